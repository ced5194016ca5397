//! `plexer serve`: the plexer's process. Loads the config, the keys and the accounts, starts a
//! pool per managed account, listens where the web server connects, and serves each
//! connection in its own task.
//!
//! Per request, not per connection: with `fastcgi_keep_conn on`, one nginx connection carries
//! requests of different users one after another, so each request is routed on its own, and a
//! worker is held only for the life of one request. A kept-alive connection that idles holds
//! no worker, which is what starves php-fpm and spawn-fcgi behind nginx's upstream keepalive.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexer_fcgi::{Address, Outbox, ServerConfig, ServerConnection, ServerEvent};
use plexer_prefork::listen::{self, SocketAccess, parse_mode};
use plexer_prefork::supervisor::Supervisor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::account::AccountName;
use crate::accounts::{AccountsError, LaunchError, Manager, runs_as_root_only_if_asked};
use crate::config::Config;
use crate::cookie::Keys;
use crate::live::State;
use crate::registry::{AccountRules, Backend, Loaded, RefusedFile, Registry};
use crate::relay::{self, Front};
use crate::request::{self, AfterRequest};
use crate::signals::{Asked, Signals};
use crate::systemd::{self, Activated};
use crate::{audit_watch, control, http_front, watch};

/// Why `plexer serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Keys(#[from] crate::cookie::KeyError),
    #[error(transparent)]
    Supervisor(#[from] plexer_prefork::supervisor::SupervisorError),
    #[error("cannot listen on {address}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    // Not a `source`: the message carries it, and a chain would print it twice.
    #[error("listen: {0}")]
    Bind(listen::BindError),
    #[error("the control socket: {0}")]
    Control(listen::BindError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    HttpFront(#[from] http_front::FrontError),
}

/// What the command line adds to the config.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// `--http ADDR`: also answer HTTP/1.1 there (the development front).
    pub http: Option<SocketAddr>,
    /// The socket systemd passed (socket activation), served instead of binding `listen:`.
    pub activated: Option<Activated>,
    /// `--allow-root`: pools without `user:` may run as root.
    pub allow_root: bool,
}

/// Loads everything and checks it, starting nothing: `plexer serve --check` (`allow_root`:
/// `--allow-root` was given too). Account files are checked one by one as the start checks
/// them: the answer holds the accounts that would start and every file that would be refused.
pub fn check(config_file: &Path, allow_root: bool) -> Result<(Config, Keys, Loaded), ServeError> {
    let config = Config::load(config_file)?;
    let keys = Keys::load(&config.secret_file)?;
    let mut loaded = Registry::load(&config.accounts_dir, &AccountRules::from_config(&config))?;
    let as_root: Vec<(AccountName, PathBuf, LaunchError)> = loaded
        .registry
        .accounts()
        .filter_map(|account| match &account.backend {
            Backend::Managed(plan) => runs_as_root_only_if_asked(plan, allow_root)
                .err()
                .map(|why| (account.name.clone(), account.file.clone(), why)),
            Backend::External { .. } => None,
        })
        .collect();
    for (name, file, why) in as_root {
        loaded.registry.remove(&name);
        let refused = AccountsError::Start {
            file: file.clone(),
            name,
            why,
        };
        loaded.refused.push(RefusedFile::new(&file, None, refused));
    }
    loaded.refused.sort_by(|a, b| a.file.cmp(&b.file));
    Ok((config, keys, loaded))
}

/// Starts the pools and serves until SIGTERM/SIGINT (drain) or SIGQUIT (at once); SIGHUP
/// reloads the config and the accounts.
pub async fn run(config_file: &Path, options: ServeOptions) -> Result<(), ServeError> {
    let config = Config::load(config_file)?;
    let keys = Keys::load(&config.secret_file)?;
    // Bound first: a socket another plexer serves refuses the start before any worker runs.
    let listener = bind(&config, options.activated).await?;
    let http = match options.http {
        Some(addr) => Some(http_front::bind(addr).await?),
        None => None,
    };
    let control_path = match config.control_socket() {
        Address::Unix(path) => path,
        Address::Tcp(_) => unreachable!("the config refuses a tcp control socket"),
    };
    let control = control::bind(&control_path).map_err(ServeError::Control)?;
    let accounts_dir = config.accounts_dir.clone();
    let supervisor = Supervisor::start()?;
    let manager = Manager::start(config_file, config, keys, supervisor, options.allow_root)?;
    let state = Arc::clone(manager.state());
    tracing::info!(
        accounts = state.snapshot().registry.len(),
        refused = state.snapshot().refused.len(),
        control = %control_path.display(),
        "accounts loaded"
    );
    let _watcher = watch::watch(&accounts_dir, Arc::clone(&manager));
    let control_task = tokio::spawn(control::serve(control, Arc::clone(&manager)));
    let audit_task = tokio::spawn(audit_watch::run(Arc::clone(&manager)));
    let mut signals = Signals::install().expect("signal handlers can be installed at start-up");
    let upstream = listener
        .address()
        .unwrap_or_else(|| state.snapshot().config.listen.clone());
    let front = http.map(|front| tokio::spawn(front.serve(upstream)));
    systemd::notify_ready(&format!(
        "serving {} accounts",
        state.snapshot().registry.len()
    ));
    // The web-server connections with a request in flight, so that a stop waits for them,
    // whichever kind of account they go to (a pool's drain alone waits for its own).
    let busy = Busy::default();
    let timeout = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let (state, busy) = (Arc::clone(&state), busy.clone());
                    tokio::spawn(serve_connection(stream, state, busy));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            asked = signals.next() => match asked {
                Asked::Reload => reload_in_background(&manager),
                // CONTRACT: SIGUSR1 reopens log files; plexer logs to stderr, which whoever
                // started it (systemd, a shell) owns, so there is nothing to reopen.
                Asked::ReopenLogs => tracing::info!("SIGUSR1: logs go to stderr; nothing to reopen"),
                Asked::Stop { drain: true, .. } => break state.snapshot().config.drain_timeout.0,
                Asked::Stop { drain: false, .. } => break Duration::ZERO,
            },
        }
    };
    tracing::info!(
        ?timeout,
        "stopping: requests in flight finish within the timeout"
    );
    systemd::notify_stopping("stopping: requests in flight finish");
    if let Some(front) = front {
        front.abort();
    }
    drop(listener);
    control_task.abort();
    audit_task.abort();
    drain(&manager, &busy, timeout).await;
    Ok(())
}

/// Waits, for `timeout` at most, for the requests in flight on every web-server connection
/// while the pools drain theirs.
async fn drain(manager: &Manager, busy: &Busy, timeout: Duration) {
    let idle = async {
        if tokio::time::timeout(timeout, busy.idle()).await.is_err() {
            tracing::warn!(
                connections = busy.count(),
                "drain_timeout passed: requests still in flight are cut"
            );
        }
    };
    tokio::join!(manager.stop(timeout), idle);
}

/// How many web-server connections have a request in flight (or its answer still to write):
/// two atomic operations a request; a stop looks every 10 ms.
#[derive(Clone, Default)]
struct Busy(Arc<AtomicUsize>);

/// One connection counted busy while it lives.
struct BusyGuard(Arc<AtomicUsize>);

impl Busy {
    fn enter(&self) -> BusyGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        BusyGuard(Arc::clone(&self.0))
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Until no connection is busy.
    async fn idle(&self) {
        while self.count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// SIGHUP: the config and every account file again, off the accept loop.
fn reload_in_background(manager: &Arc<Manager>) {
    let manager = Arc::clone(manager);
    tokio::spawn(async move {
        tracing::info!("SIGHUP: reloading the config and the accounts");
        if let Err(why) = manager.reload_all().await {
            tracing::error!(refused = %why, "SIGHUP: the config is refused, nothing changed: {why}");
        }
    });
}

/// The listening socket the web server connects to; the path is removed at the end unless
/// the socket came from systemd.
enum Listener {
    Unix(UnixListener, Option<PathBuf>),
    Tcp(TcpListener),
}

/// An accepted connection of either family.
enum Stream {
    Unix(UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Self::Unix(l, _) => Stream::Unix(l.accept().await?.0),
            Self::Tcp(l) => Stream::Tcp(l.accept().await?.0),
        })
    }

    /// Where it listens, as a client would connect; `None` for an unnamed unix socket.
    fn address(&self) -> Option<Address> {
        match self {
            Self::Unix(l, _) => {
                let local = l.local_addr().ok()?;
                Some(Address::Unix(local.as_pathname()?.to_path_buf()))
            }
            Self::Tcp(l) => Some(Address::Tcp(l.local_addr().ok()?.to_string())),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn bind(config: &Config, activated: Option<Activated>) -> Result<Listener, ServeError> {
    let listen_error = |source| ServeError::Listen {
        address: config.listen.to_string(),
        source,
    };
    if let Some(activated) = activated {
        let listener = from_systemd(activated).map_err(|source| ServeError::Listen {
            address: "the socket systemd passed".into(),
            source,
        })?;
        let address = listener.address().map_or("-".into(), |a| a.to_string());
        tracing::info!(listen = %address, "listening on the socket systemd passed");
        return Ok(listener);
    }
    let listener = match &config.listen {
        Address::Unix(path) => {
            let access = SocketAccess {
                owner: config.listen_owner.as_deref(),
                group: config.listen_group.as_deref(),
                mode: config.listen_mode.as_deref().and_then(parse_mode),
            };
            let listener = listen::bind_unix(path, &access).map_err(ServeError::Bind)?;
            listener.set_nonblocking(true).map_err(listen_error)?;
            let listener = UnixListener::from_std(listener).map_err(listen_error)?;
            Listener::Unix(listener, Some(path.clone()))
        }
        Address::Tcp(hostport) => {
            Listener::Tcp(TcpListener::bind(hostport).await.map_err(listen_error)?)
        }
    };
    tracing::info!(listen = %config.listen, "listening");
    Ok(listener)
}

fn from_systemd(activated: Activated) -> std::io::Result<Listener> {
    Ok(match activated {
        Activated::Unix(l) => {
            l.set_nonblocking(true)?;
            Listener::Unix(UnixListener::from_std(l)?, None)
        }
        Activated::Tcp(l) => {
            l.set_nonblocking(true)?;
            Listener::Tcp(TcpListener::from_std(l)?)
        }
    })
}

async fn serve_connection(stream: Stream, state: Arc<State>, busy: Busy) {
    match stream {
        Stream::Unix(s) => {
            let (rd, wr) = s.into_split();
            serve_front(rd, wr, state, busy).await;
        }
        Stream::Tcp(s) => {
            let _ = s.set_nodelay(true);
            let (rd, wr) = s.into_split();
            serve_front(rd, wr, state, busy).await;
        }
    }
}

/// Serves one web-server connection: its requests one after another, each routed on its own.
/// Counted in `busy` from a request's head to the last byte of its answer.
async fn serve_front<R, W>(rd: R, wr: W, state: Arc<State>, busy: Busy)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = ServerConfig {
        limits: state.limits.clone(),
        // One request per connection at a time, as every web server sends them; plexer takes
        // any number of connections.
        multiplex: false,
        max_conns: 65_535,
        max_reqs: 65_535,
    };
    let mut front = Front {
        conn: ServerConnection::new(config),
        rd,
        wr,
        pending: Outbox::new(),
    };
    let mut room = relay::ReadRoom::new();
    let mut serving: Option<BusyGuard> = None;
    loop {
        let head = loop {
            match front.conn.poll_event() {
                Ok(Some(ServerEvent::Request(head))) => {
                    serving.get_or_insert_with(|| busy.enter());
                    break head;
                }
                // Aborted before its params ended: never routed, so it is ended here.
                Ok(Some(ServerEvent::Abort { id })) => {
                    let _ = front.conn.end_request(id, 0);
                    continue;
                }
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "closing a web-server connection");
                    return;
                }
            }
            front.pending.append(front.conn.outbox());
            if front.conn.is_closing() && front.pending.is_empty() {
                return;
            }
            if front.pending.is_empty() && front.conn.read_buf().is_empty() {
                serving = None; // the last answer is out: idle until the next request
            }
            room.make(front.conn.read_buf());
            tokio::select! {
                // A peer that sends management records and never reads the answers stops
                // being read rather than growing them without bound.
                read = front.rd.read_buf(front.conn.read_buf()), if front.pending.len() < relay::HIGH_WATER => match read {
                    Ok(n) if n > 0 => room.after_read(n),
                    _ => {
                        let _ = relay::flush(&mut front.wr, &mut front.pending).await;
                        return;
                    }
                },
                written = relay::write_some(&mut front.wr, &mut front.pending), if !front.pending.is_empty() => {
                    if written.is_err() {
                        return;
                    }
                }
            }
        };
        if request::handle(&mut front, head, &state).await == AfterRequest::Close {
            return;
        }
    }
}
