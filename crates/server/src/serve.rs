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
use std::time::{Duration, Instant};

use plexer_fcgi::{Address, Outbox, RequestHead, ServerConfig, ServerConnection, ServerEvent};
use plexer_prefork::listen::{self, SocketAccess, parse_mode};
use plexer_prefork::supervisor::Supervisor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::account::AccountName;
use crate::accounts::{
    AccountsError, LaunchError, Manager, reaches_listen, runs_as_root_only_if_asked,
};
use crate::config::{AccountsFrom, Config};
use crate::cookie::Keys;
use crate::exposure::ListenAccess;
use crate::gauge::{Gauge, GaugeGuard, OverLimit};
use crate::live::State;
use crate::registry::{AccountRules, Backend, Loaded, RefusedFile, Registry};
use crate::relay::{self, Entry, Front, FrontTimeouts};
use crate::request::{self, AfterRequest};
use crate::scheduling::Relaying;
use crate::signals::{Asked, Signals};
use crate::systemd::{self, Activated};
use crate::{audit_watch, control, http_front, slow_watch, watch};

/// Why `plexer serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::AccessLogError),
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
    #[error("{key}: {error}")]
    Bind {
        key: &'static str,
        error: listen::BindError,
    },
    #[error("the control socket: {0}")]
    Control(listen::BindError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    HttpFront(#[from] http_front::FrontError),
    #[error(transparent)]
    Slowlog(#[from] crate::slowlog::SlowlogFileError),
    #[error(transparent)]
    Table(#[from] crate::cluster::TableError),
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
    /// How the access log's lines look (`--log-format`).
    pub access_format: crate::access_log::AccessFormat,
}

/// Loads everything and checks it, starting nothing: `plexer serve --check` (`allow_root`:
/// `--allow-root` was given too). Account files are checked one by one as the start checks
/// them: the answer holds the accounts that would start and every file that would be refused.
pub fn check(config_file: &Path, allow_root: bool) -> Result<(Config, Keys, Loaded), ServeError> {
    let config = Config::load(config_file)?;
    let keys = Keys::load(&config.secret_file)?;
    let rules = AccountRules::from_config(&config);
    let mut loaded = match config.accounts_from() {
        AccountsFrom::Dir(dir) => Registry::load(dir, &rules)?,
        AccountsFrom::Table(registry) => crate::cluster::check::load(registry, &rules)?,
    };
    let listen = ListenAccess::from_config(&config);
    let refusals: Vec<(AccountName, PathBuf, LaunchError)> = loaded
        .registry
        .accounts()
        .filter_map(|account| {
            let Backend::Managed(plan) = &account.backend else {
                return None;
            };
            let checked = runs_as_root_only_if_asked(plan, allow_root)
                .and_then(|()| reaches_listen(plan, &config, listen));
            match checked {
                Ok(Some(why)) => {
                    tracing::warn!(account = %account.name, file = %account.file.display(), "{why}");
                    None
                }
                Ok(None) => None,
                Err(why) => Some((account.name.clone(), account.file.clone(), why)),
            }
        })
        .collect();
    for (name, file, why) in refusals {
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

/// How long a node waits for its first read of the table before it serves without it (then
/// with no accounts, which come when PostgreSQL answers).
const FIRST_READ_WAIT: Duration = Duration::from_secs(10);

/// The same, for a node that started from the rows it kept.
const KEPT_FIRST_READ_WAIT: Duration = Duration::from_secs(2);

/// Starts the task that keeps the accounts equal to the table, and waits (bounded) for its
/// first read, so that a node starts serving with its accounts.
async fn read_the_table_first(
    table: &Arc<crate::cluster::Table>,
    registry: &crate::config::SharedRegistry,
    (node, listen): (String, String),
    manager: &Arc<Manager>,
) {
    let base = registry
        .connection()
        .expect("the config checked the connection string");
    let connection = crate::cluster::connect::settings(&base, &format!("plexer node {node}"));
    let runtime_dir = manager.state().snapshot().config.runtime_dir.clone();
    let cache = crate::cluster::cache::RowCache::in_dir(&runtime_dir, table.name());
    let kept = start_from_the_rows_kept(&cache, manager).await;
    let follower = crate::cluster::sync::TableFollower {
        table: Arc::clone(table),
        connection,
        check_interval: registry.check_interval.0,
        node,
        listen,
        manager: Arc::clone(manager),
        cache,
    };
    let (first_read, read) = tokio::sync::oneshot::channel();
    tokio::spawn(follower.run(Some(first_read)));
    // With the rows kept, the node has its accounts already: it waits less for the table.
    let wait = if kept {
        KEPT_FIRST_READ_WAIT
    } else {
        FIRST_READ_WAIT
    };
    if tokio::time::timeout(wait, read).await.is_err() {
        let with = if kept {
            "the rows kept at its last read"
        } else {
            "no accounts"
        };
        tracing::error!(
            table = table.name(),
            "registry: no first read of the table within {wait:?}; serving with {with} until PostgreSQL answers"
        );
    }
}

/// Applies the rows this node kept at its last read, before the table is read: a node
/// restarted while PostgreSQL is down serves the accounts it had. The first read of the table
/// reconciles (rows of the same version are left running).
async fn start_from_the_rows_kept(
    cache: &crate::cluster::cache::RowCache,
    manager: &Manager,
) -> bool {
    let kept = {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || cache.load()).await
    };
    let rows = match kept {
        Ok(Ok(Some(rows))) => rows,
        Ok(Ok(None)) | Err(_) => return false,
        Ok(Err(err)) => {
            tracing::warn!("registry: {err}");
            return false;
        }
    };
    let count = rows.len();
    let read = async { Ok::<_, std::convert::Infallible>(crate::cluster::TableRead::Whole(rows)) };
    let Ok(applied) = manager.apply_table_read(read).await;
    tracing::info!(
        rows = count,
        file = %cache.path().display(),
        "registry: started from the rows kept at the last read ({}); the table is read next",
        applied.summary()
    );
    true
}

/// Starts the pools and serves until SIGTERM/SIGINT (drain) or SIGQUIT (at once); SIGHUP
/// reloads the config and the accounts.
pub async fn run(config_file: &Path, options: ServeOptions) -> Result<(), ServeError> {
    let config = Config::load(config_file)?;
    let keys = Keys::load(&config.secret_file)?;
    // Before the supervisor and the other relaying threads start: they inherit this policy.
    let relaying = Relaying::decide(config.scheduling);
    relaying.apply_to_this_thread("plexer");
    // Bound first: a socket another plexer serves refuses the start before any worker runs.
    let listener = bind(&config, options.activated).await?;
    let status_listener = bind_status(&config).await?;
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
    let node = (config.node_name(), config.listen.to_string());
    let registry = config.registry.clone();
    // Opened before any worker starts: a path that cannot be written refuses the start.
    let slowlog = crate::slowlog::Sink::open(config.slowlog.as_deref())?;
    let supervisor = Supervisor::start_with(relaying.workers())?;
    let dumpers = supervisor.clone();
    let listen_access = listener.access();
    let manager = Manager::start(
        config_file,
        config,
        keys,
        supervisor,
        options.allow_root,
        listen_access,
    )?;
    let state = Arc::clone(manager.state());
    state.slowlog.use_sink(slowlog);
    if let (Some(table), Some(registry)) = (manager.table(), registry) {
        read_the_table_first(table, &registry, node, &manager).await;
    }
    let access_log = state.snapshot().config.access_log.clone();
    state
        .access_log
        .configure(&access_log, options.access_format)?;
    let flusher = tokio::spawn(crate::access_log::run_flusher(Arc::clone(&state)));
    tracing::info!(
        accounts = state.snapshot().registry.len(),
        refused = state.snapshot().refused.len(),
        control = %control_path.display(),
        "accounts loaded"
    );
    let _watcher = accounts_dir.map(|dir| watch::watch(&dir, Arc::clone(&manager)));
    let control_task = tokio::spawn(control::serve(control, Arc::clone(&manager)));
    let audit_task = tokio::spawn(audit_watch::run(Arc::clone(&manager)));
    let slow_task = tokio::spawn(slow_watch::run(Arc::clone(&state), dumpers));
    let sampler_task = tokio::spawn(crate::status::sampler::run(Arc::clone(&state)));
    let mut signals = Signals::install().expect("signal handlers can be installed at start-up");
    let upstream = listener
        .address()
        .unwrap_or_else(|| state.snapshot().config.listen.clone());
    let max_connections = state.snapshot().config.max_connections;
    let front = http.map(|front| tokio::spawn(front.serve(upstream, max_connections)));
    systemd::notify_ready(&format!(
        "serving {} accounts",
        state.snapshot().registry.len()
    ));
    let mut accepting = Accepting::new(Arc::clone(&state));
    let threads = state.snapshot().config.threads;
    let more =
        MoreThreads::start(threads - 1, relaying, &listener, &accepting).map_err(|source| {
            ServeError::Listen {
                address: "a duplicate of the listen socket, for threads:".into(),
                source,
            }
        })?;
    let sockets = (&listener, status_listener.as_ref());
    let timeout = serve_until_stopped(sockets, &mut accepting, &mut signals, &manager).await;
    tracing::info!(
        ?timeout,
        "stopping: requests in flight finish within the timeout"
    );
    systemd::notify_stopping("stopping: requests in flight finish");
    if let Some(front) = front {
        front.abort();
    }
    more.stop_accepting(timeout);
    drop((listener, status_listener));
    control_task.abort();
    audit_task.abort();
    slow_task.abort();
    sampler_task.abort();
    drain(&manager, &accepting.busy, timeout).await;
    more.join();
    flusher.abort();
    state.access_log.flush();
    Ok(())
}

/// `threads: N`, the N - 1 beyond this one: each a thread with a single-threaded runtime of
/// its own, accepting on a duplicate of the listen socket and serving the connections it
/// accepted, as this thread does. They share the running state and count connections in the
/// same gauges (`max_connections`, the stop's drain). Workers stay tied to the thread that
/// started them (PR_SET_PDEATHSIG), so these threads live until plexer exits.
struct MoreThreads {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// `Some(drain_timeout)` once plexer stops.
    stop: tokio::sync::watch::Sender<Option<Duration>>,
}

impl MoreThreads {
    fn start(
        count: usize,
        relaying: Relaying,
        listener: &Listener,
        accepting: &Accepting,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::watch::channel(None);
        let mut threads = Vec::with_capacity(count);
        for n in 1..=count {
            let listener = listener.duplicate()?;
            let accepting = accepting.sharing();
            let stopped = stopped.clone();
            let name = format!("plexer-{n}");
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    relaying.apply_to_this_thread(&name);
                    serve_thread(listener, accepting, stopped)
                })?;
            threads.push(thread);
        }
        Ok(Self { threads, stop })
    }

    /// Stops every thread's accepting; each then waits up to `timeout` for the requests in
    /// flight.
    fn stop_accepting(&self, timeout: Duration) {
        let _ = self.stop.send(Some(timeout));
    }

    fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// One more thread: accepts until told to stop, then lets its connections finish.
fn serve_thread(
    listener: StdListener,
    mut accepting: Accepting,
    mut stopped: tokio::sync::watch::Receiver<Option<Duration>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "a thread of threads: could not start its runtime; the others serve on");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match listener.into_tokio() {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(error = %err, "a thread of threads: cannot listen; the others serve on");
                return;
            }
        };
        let timeout = loop {
            tokio::select! {
                accepted = listener.accept() => accepting.take(accepted, Entry::Listen).await,
                _ = stopped.changed() => break (*stopped.borrow()).unwrap_or_default(),
            }
        };
        drop(listener);
        let _ = tokio::time::timeout(timeout, accepting.busy.idle()).await;
    });
}

/// Accepts on `listen:` (and `status_listen:`) and answers signals until one says stop: the
/// time the requests in flight then have (`drain_timeout`, or none for SIGQUIT).
async fn serve_until_stopped(
    (listener, status_listener): (&Listener, Option<&Listener>),
    accepting: &mut Accepting,
    signals: &mut Signals,
    manager: &Arc<Manager>,
) -> Duration {
    let state = manager.state();
    loop {
        tokio::select! {
            accepted = listener.accept() => accepting.take(accepted, Entry::Listen).await,
            accepted = accept_if(status_listener) => accepting.take(accepted, Entry::Status).await,
            asked = signals.next() => match asked {
                Asked::Reload => reload_in_background(manager),
                // CONTRACT: SIGUSR1 reopens log files. plexer logs to stderr, which whoever
                // started it (systemd, a shell) owns; the slowlog and access log files are
                // plexer's own.
                Asked::ReopenLogs => {
                    tracing::info!("SIGUSR1: reopening the slowlog and access log files");
                    state.slowlog.reopen_in_background();
                    if let Err(err) = state.access_log.reopen() {
                        tracing::error!("SIGUSR1: {err}; the access log goes on where it was");
                    }
                }
                Asked::Stop { drain: true, .. } => return state.snapshot().config.drain_timeout.0,
                Asked::Stop { drain: false, .. } => return Duration::ZERO,
            },
        }
    }
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

/// The connections with a request in flight (or its answer still to write).
type Busy = Gauge;
type BusyGuard = GaugeGuard;

/// What the accept loop keeps: the connections open (bounded by `max_connections`), and
/// those with a request in flight, so that a stop waits for them whichever kind of account
/// they go to (a pool's drain alone waits for its own).
struct Accepting {
    state: Arc<State>,
    open: Gauge,
    over_limit: OverLimit,
    busy: Busy,
}

impl Accepting {
    fn new(state: Arc<State>) -> Self {
        Self {
            state,
            open: Gauge::default(),
            over_limit: Default::default(),
            busy: Busy::default(),
        }
    }

    /// The same counts, for another thread's accept loop.
    fn sharing(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            open: self.open.clone(),
            over_limit: Default::default(),
            busy: self.busy.clone(),
        }
    }

    /// Serves an accepted connection in a task of its own, or closes it past
    /// `max_connections`.
    async fn take(&mut self, accepted: std::io::Result<Stream>, entry: Entry) {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                // Out of descriptors, say: the next accept would fail at once as well.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        let max = self.state.snapshot().config.max_connections;
        let Some(counted) = self.open.enter_below(max) else {
            self.over_limit.refused(max, "listen");
            return; // dropped: closed
        };
        let (state, busy) = (Arc::clone(&self.state), self.busy.clone());
        tokio::spawn(async move {
            serve_connection(stream, state, busy, entry).await;
            drop(counted);
        });
    }
}

/// The next connection on `listener`, or never without one.
async fn accept_if(listener: Option<&Listener>) -> std::io::Result<Stream> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
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

/// A duplicate of the listen socket (the same open file description, O_NONBLOCK included),
/// not yet in a runtime: what another thread's runtime takes. Never removes the path.
enum StdListener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

impl StdListener {
    /// Registers it with the runtime of the calling thread.
    fn into_tokio(self) -> std::io::Result<Listener> {
        Ok(match self {
            Self::Unix(l) => Listener::Unix(UnixListener::from_std(l)?, None),
            Self::Tcp(l) => Listener::Tcp(TcpListener::from_std(l)?),
        })
    }
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

    /// Another descriptor of the same socket, for another thread's runtime.
    fn duplicate(&self) -> std::io::Result<StdListener> {
        use std::os::fd::AsFd;
        Ok(match self {
            Self::Unix(l, _) => StdListener::Unix(l.as_fd().try_clone_to_owned()?.into()),
            Self::Tcp(l) => StdListener::Tcp(l.as_fd().try_clone_to_owned()?.into()),
        })
    }

    /// Who may connect, as far as the socket file's owner, group and mode say.
    fn access(&self) -> ListenAccess {
        match self.address() {
            Some(Address::Unix(path)) => ListenAccess::of_socket_file(&path),
            _ => ListenAccess::Anyone,
        }
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
    if let Some(activated) = activated {
        let listener = from_systemd(activated).map_err(|source| ServeError::Listen {
            address: "the socket systemd passed".into(),
            source,
        })?;
        let address = listener.address().map_or("-".into(), |a| a.to_string());
        tracing::info!(listen = %address, "listening on the socket systemd passed");
        return Ok(listener);
    }
    let access = SocketAccess {
        owner: config.listen_owner.as_deref(),
        group: config.listen_group.as_deref(),
        mode: config.listen_mode.as_deref().and_then(parse_mode),
    };
    let listener = bind_address("listen", &config.listen, &access).await?;
    tracing::info!(listen = %config.listen, "listening");
    Ok(listener)
}

/// The status page's own socket, when `status_listen` is set: owned by plexer, its group and
/// mode as configured, so that who may see the page is who may connect.
async fn bind_status(config: &Config) -> Result<Option<Listener>, ServeError> {
    let Some(address) = &config.status_listen else {
        return Ok(None);
    };
    let access = SocketAccess {
        owner: None,
        group: config.status_listen_group.as_deref(),
        mode: config.status_listen_mode.as_deref().and_then(parse_mode),
    };
    let listener = bind_address("status_listen", address, &access).await?;
    tracing::info!(status_listen = %address, "the status page listens on a socket of its own");
    Ok(Some(listener))
}

/// Binds `address`, the value of the config's `key`.
async fn bind_address(
    key: &'static str,
    address: &Address,
    access: &SocketAccess<'_>,
) -> Result<Listener, ServeError> {
    let listen_error = |source| ServeError::Listen {
        address: address.to_string(),
        source,
    };
    Ok(match address {
        Address::Unix(path) => {
            let listener =
                listen::bind_unix(path, access).map_err(|error| ServeError::Bind { key, error })?;
            listener.set_nonblocking(true).map_err(listen_error)?;
            let listener = UnixListener::from_std(listener).map_err(listen_error)?;
            Listener::Unix(listener, Some(path.clone()))
        }
        Address::Tcp(hostport) => {
            Listener::Tcp(TcpListener::bind(hostport).await.map_err(listen_error)?)
        }
    })
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

/// Borrowed halves, not `into_split`'s owned ones: an owned write half shuts the socket down
/// when dropped, one syscall per connection that the close right after does anyway.
async fn serve_connection(stream: Stream, state: Arc<State>, busy: Busy, entry: Entry) {
    match stream {
        Stream::Unix(mut s) => {
            let (rd, wr) = s.split();
            serve_front(rd, wr, state, busy, entry).await;
        }
        Stream::Tcp(mut s) => {
            let _ = s.set_nodelay(true);
            let (rd, wr) = s.split();
            serve_front(rd, wr, state, busy, entry).await;
        }
    }
}

/// Serves one web-server connection: its requests one after another, each routed on its own.
/// Counted in `busy` from a request's head to the last byte of its answer.
async fn serve_front<R, W>(rd: R, wr: W, state: Arc<State>, busy: Busy, entry: Entry)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = ServerConfig {
        limits: state.limits.clone(),
        // One request per connection at a time, as every web server sends them; plexer takes
        // up to `max_connections` connections.
        multiplex: false,
        max_conns: 65_535,
        max_reqs: 65_535,
    };
    let snapshot = state.snapshot();
    let mut front = Front {
        conn: ServerConnection::new(config),
        rd,
        wr,
        pending: Outbox::new(),
        timeouts: FrontTimeouts {
            body: snapshot.config.body_timeout.0,
            send: snapshot.config.send_timeout.0,
        },
        entry,
    };
    drop(snapshot);
    let mut room = relay::ReadRoom::new();
    let mut serving: Option<BusyGuard> = None;
    loop {
        let Some(head) = next_request(&mut front, &mut room, &mut serving, &busy).await else {
            return;
        };
        if request::handle(&mut front, head, &state).await == AfterRequest::Close {
            return;
        }
    }
}

/// Reads the web server's next request, answering management records meanwhile; `None` when
/// the connection is over. `serving` counts the connection busy from the request's head until
/// its answer is out.
async fn next_request<R, W>(
    front: &mut Front<R, W>,
    room: &mut relay::ReadRoom,
    serving: &mut Option<BusyGuard>,
    busy: &Busy,
) -> Option<RequestHead>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // When a byte last moved: a request begun, or an answer owed, waits only so long.
    let mut progress = Instant::now();
    loop {
        match front.conn.poll_event() {
            Ok(Some(ServerEvent::Request(head))) => {
                serving.get_or_insert_with(|| busy.enter());
                return Some(head);
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
                return None;
            }
        }
        front.pending.append(front.conn.outbox());
        if front.conn.is_closing() && front.pending.is_empty() {
            return None;
        }
        let begun = front.conn.active_requests() > 0 || !front.conn.read_buf().is_empty();
        if front.pending.is_empty() && !begun {
            *serving = None; // the last answer is out: idle until the next request
        }
        let waiting = relay::waiting_for(&front.pending, begun);
        let stall = front.timeouts.deadline(waiting, progress);
        room.make(front.conn.read_buf());
        tokio::select! {
            // A peer that sends management records and never reads the answers stops
            // being read rather than growing them without bound.
            read = front.rd.read_buf(front.conn.read_buf()), if front.pending.len() < relay::HIGH_WATER => match read {
                Ok(n) if n > 0 => {
                    room.after_read(n);
                    progress = Instant::now();
                }
                _ => {
                    let _ = relay::flush_front(front).await;
                    return None;
                }
            },
            written = relay::write_some(&mut front.wr, &mut front.pending), if !front.pending.is_empty() => {
                if written.is_err() {
                    return None;
                }
                progress = Instant::now();
            }
            () = relay::until(stall) => {
                tracing::info!(waited_for = ?waiting, "the web server kept a connection waiting past its timeout: closed");
                return None;
            }
        }
    }
}
