//! `plexer spawn`: spawn-fcgi's command line and model, with supervision.
//!
//! Like spawn-fcgi it binds the socket the web server connects to (`-s PATH` or `-a ADDR -p
//! PORT`), sets its owner and mode (`-U -G -M`), and starts `-F N` copies of the application
//! with that socket as descriptor 0, dropped to `-u/-g`, in `-c` chroot and `-d` directory.
//! Unlike spawn-fcgi it stays in the foreground and keeps them running: a worker that dies is
//! replaced (with backoff, and a crash loop stops the command with the reason), `--max-requests`
//! recycles workers, and the fork-safety audit watches for one database connection shared by
//! several of the application's processes (an app that connects and then forks, as flup's
//! prefork server did). spawn-fcgi + multiwatch users swap the command and gain all that.
//!
//! Signals: SIGTERM and SIGINT stop once the requests in flight are done, SIGQUIT at once;
//! SIGHUP starts new workers (new code, as uWSGI's reload and php-fpm's SIGUSR2 do) and lets
//! the old ones finish their requests, unless the new ones die in their first second, which
//! leaves the old ones serving; SIGUSR1 is logged (the logs go to stderr: nothing to reopen).
//!
//! Deliberate differences from spawn-fcgi, for safety: `-a` defaults to 127.0.0.1, not every
//! address; a unix socket gets mode 0660 unless `-M` says otherwise; `-P` holds plexer's own pid
//! (the process to signal), not the workers'.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use nix::unistd::Pid;
use plexer_prefork::audit::{
    AuditMode, AuditPolicy, AuditRound, NoteLog, PoolAuditor, TcpEndpoint, Verdict,
};
use plexer_prefork::listen::{self, SocketAccess, parse_mode};
use plexer_prefork::pool::{MIN_LIFETIME, Pm, PoolSettings, PoolState};
use plexer_prefork::spawn::{Identity, WorkerCommand};
use plexer_prefork::supervisor::{PoolHandle, Sockets, Supervisor, SupervisorError};
use plexer_server::signals::{Asked, Signals};

/// How long a graceful stop (SIGTERM, SIGINT) lets requests in flight finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub(crate) struct SpawnArgs {
    /// Unix socket to bind (spawn-fcgi -s).
    #[arg(short = 's', value_name = "PATH", conflicts_with_all = ["addr", "port"])]
    socket: Option<PathBuf>,
    /// Address to bind with -p (default 127.0.0.1; spawn-fcgi binds every address).
    #[arg(short = 'a', value_name = "ADDR", requires = "port")]
    addr: Option<String>,
    /// TCP port to bind.
    #[arg(short = 'p', value_name = "PORT")]
    port: Option<u16>,
    /// Number of workers.
    #[arg(short = 'F', value_name = "N", default_value_t = 1)]
    children: usize,
    /// User the workers run as.
    #[arg(short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Group the workers run as (default: the user's primary group).
    #[arg(short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Owner of the unix socket.
    #[arg(short = 'U', value_name = "USER")]
    socket_user: Option<String>,
    /// Group of the unix socket.
    #[arg(short = 'G', value_name = "GROUP")]
    socket_group: Option<String>,
    /// Mode of the unix socket, in octal (default 0660).
    #[arg(short = 'M', value_name = "MODE")]
    socket_mode: Option<String>,
    /// Chroot the workers into DIR.
    #[arg(short = 'c', value_name = "DIR")]
    chroot: Option<PathBuf>,
    /// Change the workers' directory to DIR.
    #[arg(short = 'd', value_name = "DIR")]
    chdir: Option<PathBuf>,
    /// Write plexer's pid to PIDFILE.
    #[arg(short = 'P', value_name = "PIDFILE")]
    pidfile: Option<PathBuf>,
    /// Recycle each worker after N requests (sets PHP_FCGI_MAX_REQUESTS, which the
    /// application honours by exiting; plexer starts a fresh one).
    #[arg(long, value_name = "N")]
    max_requests: Option<u64>,
    /// What to do when the application's processes share a database connection.
    #[arg(long, default_value = "strict", value_parser = audit_modes())]
    audit: AuditMode,
    /// Also counts connections to this endpoint as database handles (repeatable): a port
    /// (6432) or an address (10.0.0.5:6432).
    #[arg(long = "database", value_name = "ENDPOINT")]
    databases: Vec<TcpEndpoint>,
    /// The application and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// `--audit`'s values, each with what it does.
fn audit_modes() -> impl TypedValueParser<Value = AuditMode> {
    let value = |mode: AuditMode, help: &'static str| PossibleValue::new(mode.as_str()).help(help);
    PossibleValuesParser::new([
        value(
            AuditMode::Strict,
            "Stop the workers and exit with the reason",
        ),
        value(AuditMode::Warn, "Log the finding and go on"),
        value(AuditMode::Off, "Do not look"),
    ])
    .map(|name| name.parse().expect("one of the possible values"))
}

pub(crate) fn run(args: SpawnArgs) -> anyhow::Result<ExitCode> {
    if args.children == 0 {
        bail!("-F 0 starts no worker: give at least 1");
    }
    // Checked before the socket exists, so a bad -u or -g leaves no socket file behind.
    let command = worker_command(&args)?;
    let listener = bind(&args)?;
    if let Some(pidfile) = &args.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pid file {}", pidfile.display()))?;
    }
    let settings = PoolSettings {
        pm: Pm::Static,
        max_children: args.children,
        // The application counts its own requests on a shared socket (PHP_FCGI_MAX_REQUESTS).
        max_requests: 0,
        max_requests_jitter: 0,
        // A worker finishing its request may use the whole drain time.
        stop_timeout: DRAIN_TIMEOUT,
        ..PoolSettings::default()
    };
    // The thread that forks must outlive the workers (PR_SET_PDEATHSIG follows the thread), so
    // the pool runs on this one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let policy = AuditPolicy::new().declaring(&args.databases);
    let auditor = PoolAuditor::new(args.audit);
    let code = runtime.block_on(supervise(
        settings,
        command,
        listener,
        args.socket.as_deref(),
        (auditor, policy),
    ));
    if let Some(pidfile) = &args.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    if let Some(path) = &args.socket {
        let _ = std::fs::remove_file(path);
    }
    code
}

async fn supervise(
    settings: PoolSettings,
    command: WorkerCommand,
    listener: OwnedFd,
    socket_path: Option<&Path>,
    (mut auditor, policy): (PoolAuditor, AuditPolicy),
) -> anyhow::Result<ExitCode> {
    let supervisor = Supervisor::start()?;
    let name = command
        .program
        .file_name()
        .map_or("app".into(), |n| n.to_string_lossy().into_owned());
    let listener = Arc::new(listener);
    let start = || {
        supervisor.add_pool(
            &name,
            settings.clone(),
            command.clone(),
            Sockets::Shared(Arc::clone(&listener)),
        )
    };
    let mut pool = start()?;
    let mut signals = Signals::install()?;
    // Workers replaced by a SIGHUP, finishing their requests; a graceful stop waits for them.
    let mut retiring = Vec::new();
    let mut next_look = tokio::time::Instant::now();
    let mut notes = NoteLog::default();
    // New clients are turned away at once (no socket file) while the workers finish.
    let unlink = || {
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
    };
    loop {
        tokio::select! {
            asked = signals.next() => match asked {
                Asked::Stop { drain: true, by } => {
                    unlink();
                    return stop_all(&pool, retiring, by).await;
                }
                Asked::Stop { drain: false, by } => return stop(&pool, Duration::ZERO, by).await,
                Asked::Reload => {
                    if let Some(fresh) = new_generation(&pool, start).await {
                        let old = std::mem::replace(&mut pool, fresh);
                        retiring.push(tokio::spawn(async move { old.drain(DRAIN_TIMEOUT).await }));
                    }
                }
                Asked::ReopenLogs => {
                    tracing::info!(pool = pool.name(), signal = "SIGUSR1", "logs go to stderr; nothing to reopen");
                }
            },
            _ = tokio::time::sleep_until(next_look) => {
                if let PoolState::Failed { reason } = pool.status().state {
                    stop(&pool, Duration::ZERO, "a crash loop").await?;
                    bail!("the workers keep failing: {reason}");
                }
                for verdict in audit_pool(&pool, &policy, &mut auditor, &mut notes) {
                    match verdict {
                        Verdict::Stop(finding) => {
                            stop(&pool, Duration::ZERO, "the fork-safety audit").await?;
                            bail!("{finding} (audit: strict stopped the workers)");
                        }
                        Verdict::Warn(finding) => tracing::warn!(pool = pool.name(), audit = %auditor.mode(), finding = %finding, "the fork-safety audit: {finding}"),
                    }
                }
                next_look = tokio::time::Instant::now() + auditor.next_look();
            }
        }
    }
}

/// SIGHUP: new workers, which replace the old ones once they have lived [`MIN_LIFETIME`]; the
/// old ones serve on when the new ones fail.
async fn new_generation(
    pool: &PoolHandle,
    start: impl FnOnce() -> Result<PoolHandle, SupervisorError>,
) -> Option<PoolHandle> {
    tracing::info!(pool = pool.name(), "SIGHUP: starting new workers");
    let fresh = match start() {
        Ok(fresh) => fresh,
        Err(err) => {
            tracing::error!(pool = pool.name(), signal = "SIGHUP", old_workers = "serve on", error = %err, "cannot start new workers; the old ones serve on");
            return None;
        }
    };
    match settled(&fresh).await {
        Ok(()) => {
            tracing::info!(
                pool = pool.name(),
                "SIGHUP: new workers serve; the old ones finish their requests"
            );
            Some(fresh)
        }
        Err(why) => {
            fresh.drain(Duration::ZERO).await;
            tracing::error!(
                pool = pool.name(),
                signal = "SIGHUP",
                old_workers = "serve on",
                "the new workers failed ({why}); the old ones serve on"
            );
            None
        }
    }
}

/// Waits [`MIN_LIFETIME`] for a new pool's workers: a failure meanwhile (a worker that could
/// not start or died young) is its reason.
async fn settled(pool: &PoolHandle) -> Result<(), String> {
    tokio::time::sleep(MIN_LIFETIME + Duration::from_millis(100)).await;
    let status = pool.status();
    match (status.state, status.stats.last_failure) {
        (PoolState::Failed { reason }, _) => Err(reason),
        (_, Some((_, why))) => Err(why),
        _ => Ok(()),
    }
}

/// A graceful stop of the current workers and of those a SIGHUP replaced.
async fn stop_all(
    pool: &PoolHandle,
    retiring: Vec<tokio::task::JoinHandle<()>>,
    why: &str,
) -> anyhow::Result<ExitCode> {
    let code = stop(pool, DRAIN_TIMEOUT, why).await;
    for old in retiring {
        let _ = old.await;
    }
    code
}

async fn stop(pool: &PoolHandle, timeout: Duration, why: &str) -> anyhow::Result<ExitCode> {
    tracing::info!(pool = pool.name(), ?timeout, "stopping on {why}");
    pool.drain(timeout).await;
    Ok(ExitCode::SUCCESS)
}

/// One look at the application's processes: the workers and whatever they forked.
fn audit_pool(
    pool: &PoolHandle,
    policy: &AuditPolicy,
    auditor: &mut PoolAuditor,
    notes: &mut NoteLog,
) -> Vec<Verdict> {
    if auditor.mode() == AuditMode::Off {
        return Vec::new();
    }
    let workers: Vec<Pid> = pool.status().workers.iter().filter_map(|w| w.pid).collect();
    let mut round = AuditRound::start();
    let verdicts = auditor.look(&mut round, &workers, policy);
    for note in notes.first_time(round.take_notes()) {
        tracing::warn!(pool = pool.name(), "{note}");
    }
    verdicts
}

/// Binds the socket the web server connects to, as spawn-fcgi does: a live unix socket is
/// refused, a stale one replaced; owner and mode applied before any worker starts.
fn bind(args: &SpawnArgs) -> anyhow::Result<OwnedFd> {
    if let Some(path) = &args.socket {
        return bind_unix(path, args).map(OwnedFd::from);
    }
    let Some(port) = args.port else {
        bail!("say where to listen: -s PATH, or -p PORT (with -a ADDR)");
    };
    let addr = args.addr.as_deref().unwrap_or("127.0.0.1");
    let listener = std::net::TcpListener::bind((addr, port))
        .with_context(|| format!("cannot bind {addr}:{port}"))?;
    Ok(OwnedFd::from(listener))
}

fn bind_unix(path: &Path, args: &SpawnArgs) -> anyhow::Result<UnixListener> {
    let mode = args
        .socket_mode
        .as_deref()
        .map(|mode| {
            parse_mode(mode).with_context(|| format!("-M {mode:?} is not an octal mode like 0660"))
        })
        .transpose()?;
    let access = SocketAccess {
        owner: args.socket_user.as_deref(),
        group: args.socket_group.as_deref(),
        mode,
    };
    Ok(listen::bind_unix(path, &access)?)
}

fn worker_command(args: &SpawnArgs) -> anyhow::Result<WorkerCommand> {
    let (program, rest) = args
        .command
        .split_first()
        .context("give the application after --: plexer spawn -s SOCK -- /usr/bin/php-cgi")?;
    let identity = match &args.user {
        Some(user) => {
            let identity = Identity::resolve(user, args.group.as_deref())?;
            if identity.uid.is_root() || identity.gid.as_raw() == 0 {
                // spawn-fcgi refuses this too: a FastCGI app faces the network.
                bail!("-u/-g would run the workers as root: choose an unprivileged user");
            }
            Some(identity)
        }
        None if args.group.is_some() => bail!("-g needs -u: give the user the workers run as"),
        None => None,
    };
    let mut env = Vec::new();
    if let Some(n) = args.max_requests {
        env.push(("PHP_FCGI_MAX_REQUESTS".into(), n.to_string().into()));
    }
    Ok(WorkerCommand {
        program: program.into(),
        args: rest.iter().map(Into::into).collect(),
        clear_env: false,
        env,
        identity,
        chroot: args.chroot.clone(),
        chdir: args.chdir.clone(),
        rlimits: Vec::new(),
    })
}
