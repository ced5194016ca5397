//! The config file and the account files (CONTRACT.md, "The config file").
//!
//! Every key is known: an unknown key is an error naming the file, the line and the key, so a
//! typo never silently falls back to a default. Every check that can be made without starting
//! anything is made here, so that `plexer serve --check` and a reload refuse a bad file whole
//! and leave the running state alone.

mod dump_command;
mod duration;
mod pool_keys;
mod shared_registry;
mod yaml;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use plexer_fcgi::Address;
use plexer_prefork::audit::TcpEndpoint;
use serde::Deserialize;

use crate::account::AccountName;

pub use dump_command::{DumpCommand, DumpCommandError};
pub use duration::Span;
pub use plexer_prefork::listen::parse_mode;
pub use pool_keys::{AuditMode, DEFAULT_SLOW_REQUEST, PmKind, PoolKeys, PoolPlan};
pub use shared_registry::{DEFAULT_TABLE, NODES_TABLE, SharedRegistry, host_name, is_identifier};

/// What went wrong with a config or account file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    // `error`, not `source`: the message carries the cause, and a chain would repeat it.
    #[error("cannot read {}: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{} is not a regular file: an account file must be one (a FIFO or a device would stall \
         plexer); remove it or replace it with a file",
        file.display()
    )]
    NotAFile { file: PathBuf },
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
    /// No YAML document at all: most often a file caught between an editor's truncation and
    /// its write, so it is refused rather than started as an account with every default.
    #[error(
        "{} is empty (or only comments): an account with every default is written `{{}}`; a \
         file being written is applied once it is whole",
        file.display()
    )]
    Empty { file: PathBuf },
}

impl ConfigError {
    /// The line the problem is on, where the YAML parser gave one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Parse { line, .. } if *line > 0 => Some(*line),
            _ => None,
        }
    }

    pub(crate) fn invalid(file: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

/// How a request is matched to its account (`route.by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteBy {
    /// The signed routing cookie.
    #[default]
    Cookie,
    /// `REMOTE_USER`, set by the web server's own authentication, looked up in `users`.
    RemoteUser,
    /// The request's host: one subdomain per account (`bob.example.com` → `bob`).
    Host,
    /// The first path segment: `/bob/…` → `bob`.
    PathPrefix,
    /// The app of `authorizer.account`, asked in FastCGI's AUTHORIZER role.
    Authorizer,
}

/// `route:`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    pub by: RouteBy,
    pub cookie: String,
    pub max_age: Span,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            by: RouteBy::Cookie,
            cookie: "plexer_account".into(),
            max_age: Span(std::time::Duration::from_secs(12 * 3600)),
        }
    }
}

/// `login:`: where a request without a valid cookie goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    pub account: Option<String>,
    pub redirect: Option<String>,
}

/// `authorizer:`: the app that decides, for `route.by: authorizer`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorizer {
    /// The account whose app answers in the AUTHORIZER role.
    pub account: String,
    /// How long its answer may take before the request gets a 503.
    #[serde(default = "default_authorizer_timeout")]
    pub timeout: Span,
    /// Decisions kept per value of a cookie; none without it.
    #[serde(default)]
    pub cache: Option<AuthorizerCache>,
}

/// `authorizer.cache:`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerCache {
    /// The cookie whose value keys a decision (the app's session cookie).
    pub cookie: String,
    /// How long a decision is kept: a logout takes effect within it.
    pub ttl: Span,
    /// The most decisions kept; the least recently used goes first.
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
}

/// Letters, digits, `_` and `-`: a cookie name plexer can look for without doubt.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn default_authorizer_timeout() -> Span {
    Span(std::time::Duration::from_secs(5))
}

/// Decisions kept by default: 10,000 signed-in sessions, a few MiB at most.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// The most `max_entries` may say.
pub const MAX_CACHE_ENTRIES: usize = 1 << 20;

fn default_cache_entries() -> usize {
    DEFAULT_CACHE_ENTRIES
}

/// Where a config's accounts live.
#[derive(Clone, Copy, Debug)]
pub enum AccountsFrom<'a> {
    Dir(&'a Path),
    Table(&'a SharedRegistry),
}

/// The main config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "address")]
    pub listen: Address,
    #[serde(default)]
    pub listen_mode: Option<String>,
    #[serde(default)]
    pub listen_owner: Option<String>,
    #[serde(default)]
    pub listen_group: Option<String>,
    #[serde(default, deserialize_with = "optional_address")]
    pub control: Option<Address>,
    /// The accounts, one file each; or `registry:`, a PostgreSQL table many nodes share.
    #[serde(default)]
    pub accounts_dir: Option<PathBuf>,
    #[serde(default)]
    pub registry: Option<SharedRegistry>,
    /// This node's name among the nodes of one registry; the host name by default.
    #[serde(default)]
    pub node: Option<String>,
    pub runtime_dir: PathBuf,
    pub secret_file: PathBuf,
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Span,
    #[serde(default)]
    pub route: Route,
    #[serde(default)]
    pub login: Login,
    #[serde(default)]
    pub authorizer: Option<Authorizer>,
    #[serde(default = "default_status_path")]
    pub status_path: String,
    #[serde(default = "default_ping_path")]
    pub ping_path: String,
    /// Clients that may see the status page (CONTRACT: loopback by default), by the
    /// `REMOTE_ADDR` the web server sends; not used when `status_listen` is set.
    #[serde(default = "default_status_allow")]
    pub status_allow: Vec<IpAddr>,
    /// A socket of its own for the status page: whoever can connect sees it, and the
    /// `listen:` socket no longer serves it, so no param a client or tenant sends opens it.
    #[serde(default, deserialize_with = "optional_address")]
    pub status_listen: Option<Address>,
    #[serde(default)]
    pub status_listen_group: Option<String>,
    #[serde(default)]
    pub status_listen_mode: Option<String>,
    /// How often the dashboard's history takes a sample of every account; its ring holds 90
    /// samples, 15 minutes at the default.
    #[serde(default = "default_status_sample_interval")]
    pub status_sample_interval: Span,
    /// Serve accounts whose workers could connect to `listen:` even where the route trusts a
    /// param they could send (`route.by: remote_user`, `host`, `path_prefix`).
    #[serde(default)]
    pub allow_shared_user: bool,
    #[serde(default)]
    pub audit: AuditMode,
    /// Database endpoints the audit knows beside the well-known ports: `5432`,
    /// `127.0.0.1:6000`, `[::1]:7000`.
    #[serde(default, deserialize_with = "endpoints")]
    pub audit_databases: Vec<TcpEndpoint>,
    /// Where an account's `socket:` may point (directories); empty: anywhere outside
    /// runtime_dir.
    #[serde(default)]
    pub socket_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub pool: PoolKeys,
    /// Web-server connections served at once; one more is closed as it arrives.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Where the access log goes: `stderr` (the default), `off`, or a file's path.
    #[serde(default, deserialize_with = "access_log_to")]
    pub access_log: AccessLogTo,
    /// Threads that accept on `listen:` and relay, each with a runtime of its own.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How the kernel schedules the relaying threads (`batch`: no wakeup preemption of the
    /// workers whose output wakes them; see crate::scheduling).
    #[serde(default)]
    pub scheduling: crate::scheduling::Scheduling,
    /// The longest the web server may pause while it sends a request (its params, its body),
    /// nginx's `client_body_timeout` idea: a slow body never holds a worker to the end of
    /// `request_timeout`.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Span,
    /// The longest the web server may go without taking any of an answer (nginx's
    /// `send_timeout`).
    #[serde(default = "default_send_timeout")]
    pub send_timeout: Span,
    /// The slowlog file: every slow request, recorded while it runs, with its worker's stack.
    /// Opened at the start, again on SIGUSR1 (after a rotation) and when a reload changes it.
    #[serde(default)]
    pub slowlog: Option<PathBuf>,
}

/// Most connections plexer accepts when `max_connections` is not given: nginx's upstream
/// keepalive pools and the requests queued for workers stay far below it, and a peer that
/// opens connections without end stops here rather than at the file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The largest `max_connections` accepted: each connection costs a descriptor and a task.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// The most `threads` may say: far more than any machine's cores.
pub const MAX_THREADS: usize = 256;

fn default_threads() -> usize {
    1
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_body_timeout() -> Span {
    Span(std::time::Duration::from_secs(10))
}

fn default_send_timeout() -> Span {
    Span(std::time::Duration::from_secs(60))
}

fn default_drain_timeout() -> Span {
    Span(std::time::Duration::from_secs(30))
}

/// The dashboard's sampling interval: 90 samples of 10 s are its 15 minutes of charts.
pub const DEFAULT_STATUS_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Bounds of `status_sample_interval`: below a second the charts show noise (and the sampler
/// reads every pool ten times as often), above a minute the "last minute" has no sample.
pub const STATUS_SAMPLE_INTERVAL_BOUNDS: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(60);

fn default_status_sample_interval() -> Span {
    Span(DEFAULT_STATUS_SAMPLE_INTERVAL)
}

fn default_status_path() -> String {
    "/plexer-status".into()
}

fn default_ping_path() -> String {
    "/plexer-ping".into()
}

fn default_status_allow() -> Vec<IpAddr> {
    vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    ]
}

fn address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn endpoints<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TcpEndpoint>, D::Error> {
    /// A port alone may be written as a number.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Endpoint {
        Port(u16),
        Text(String),
    }
    Vec::<Endpoint>::deserialize(d)?
        .into_iter()
        .map(|endpoint| match endpoint {
            Endpoint::Port(port) => Ok(TcpEndpoint::Port(port)),
            Endpoint::Text(text) => text.parse().map_err(|err| {
                serde::de::Error::custom(format!("audit_databases: {text:?}: {err}"))
            }),
        })
        .collect()
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
        file: file.to_owned(),
        error,
    })
}

/// The absolute directory of a config file, which its relative paths are taken from: absolute,
/// so that no check compares a relative path with an absolute one (a relative `-c` included).
fn base_dir(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_owned())
}

/// Makes a relative `path` one below `base`.
fn anchor(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

/// `control.sock` in the runtime directory, where no `control:` says otherwise.
fn default_control(runtime_dir: &Path) -> Address {
    Address::Unix(runtime_dir.join("control.sock"))
}

/// `access_log:`: where the access log's lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLogTo {
    #[default]
    Stderr,
    Off,
    /// A file appended to; a relative path is taken from the config file's directory.
    File(PathBuf),
}

fn access_log_to<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AccessLogTo, D::Error> {
    Ok(match String::deserialize(d)?.as_str() {
        "" => {
            return Err(serde::de::Error::custom(
                "access_log is empty: give stderr, off, or a file's path",
            ));
        }
        "stderr" => AccessLogTo::Stderr,
        "off" => AccessLogTo::Off,
        path => AccessLogTo::File(PathBuf::from(path)),
    })
}

fn optional_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Address>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

impl Config {
    /// Reads, parses and checks the config file. Relative paths in it are taken relative to
    /// the file's own directory, so a config and its files move together.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let mut config = Self::parse(&read(file)?, file)?;
        let base = base_dir(file);
        for path in [&mut config.runtime_dir, &mut config.secret_file]
            .into_iter()
            .chain(config.accounts_dir.as_mut())
            .chain(config.socket_dirs.iter_mut())
            .chain(config.slowlog.as_mut())
            .chain(match &mut config.access_log {
                AccessLogTo::File(path) => Some(path),
                _ => None,
            })
        {
            anchor(&base, path);
        }
        let addresses = [
            Some(&mut config.listen),
            config.control.as_mut(),
            config.status_listen.as_mut(),
        ];
        for address in addresses.into_iter().flatten() {
            if let Address::Unix(path) = address {
                anchor(&base, path);
            }
        }
        Ok(config)
    }

    /// Parses and checks config text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let config: Self = yaml::parse(text, file)?;
        config.check(file)?;
        Ok(config)
    }

    /// The control socket named by a config file, read leniently: `plexer accounts` must
    /// still reach a running plexer after someone saved a config that does not validate.
    pub fn control_socket_of(file: &Path) -> Result<Address, ConfigError> {
        #[derive(Deserialize)]
        struct Partial {
            #[serde(default, deserialize_with = "optional_address")]
            control: Option<Address>,
            runtime_dir: Option<PathBuf>,
        }
        let partial: Partial = yaml::parse(&read(file)?, file)?;
        let base = base_dir(file);
        match (partial.control, partial.runtime_dir) {
            (Some(Address::Unix(mut path)), _) => {
                anchor(&base, &mut path);
                Ok(Address::Unix(path))
            }
            (Some(tcp), _) => Ok(tcp),
            (None, Some(mut dir)) => {
                anchor(&base, &mut dir);
                Ok(default_control(&dir))
            }
            (None, None) => Err(ConfigError::invalid(
                file,
                "neither control: nor runtime_dir: is set, so there is no control socket",
            )),
        }
    }

    /// The control socket: `control:`, or `control.sock` in the runtime directory.
    pub fn control_socket(&self) -> Address {
        self.control
            .clone()
            .unwrap_or_else(|| default_control(&self.runtime_dir))
    }

    fn check_authorizer(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::invalid(file, message));
        let Some(authorizer) = &self.authorizer else {
            return match self.route.by {
                RouteBy::Authorizer => invalid(
                    "route.by: authorizer needs authorizer: { account: NAME }, the account whose \
                     app answers in the AUTHORIZER role"
                        .into(),
                ),
                _ => Ok(()),
            };
        };
        if self.route.by != RouteBy::Authorizer {
            return invalid("authorizer: is set, but route.by is not authorizer".into());
        }
        if let Err(err) = AccountName::new(&authorizer.account) {
            return invalid(format!("authorizer.account: {err}"));
        }
        if authorizer.timeout.0.is_zero() {
            return invalid("authorizer.timeout is 0: every request would get a 503".into());
        }
        let Some(cache) = &authorizer.cache else {
            return Ok(());
        };
        if !is_cookie_name(&cache.cookie) {
            return invalid(format!(
                "authorizer.cache.cookie {:?} is not a cookie name: use letters, digits, '_' and '-'",
                cache.cookie
            ));
        }
        if cache.ttl.0.is_zero() {
            return invalid("authorizer.cache.ttl is 0: leave cache: out to ask every time".into());
        }
        if !(1..=MAX_CACHE_ENTRIES).contains(&cache.max_entries) {
            return invalid(format!(
                "authorizer.cache.max_entries {} is outside 1..={MAX_CACHE_ENTRIES}",
                cache.max_entries
            ));
        }
        Ok(())
    }

    fn check(&self, file: &Path) -> Result<(), ConfigError> {
        self.check_accounts_from(file)?;
        self.check_sockets(file)?;
        self.check_routing(file)?;
        self.check_authorizer(file)?;
        self.check_bounds(file)?;
        self.check_template(file)
    }

    /// Exactly one of accounts_dir and registry, and a usable node name.
    fn check_accounts_from(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::invalid(file, message));
        match (&self.accounts_dir, &self.registry) {
            (Some(_), Some(_)) => {
                return invalid(
                    "both accounts_dir and registry are set: the accounts live in one of them \
                     (`plexer accounts import DIR` moves a directory into the table)"
                        .into(),
                );
            }
            (None, None) => {
                return invalid(
                    "neither accounts_dir nor registry is set: say where the accounts live".into(),
                );
            }
            (None, Some(registry)) => registry.check().or_else(invalid)?,
            (Some(_), None) => {}
        }
        if let Some(node) = &self.node {
            shared_registry::check_node_name(node).or_else(invalid)?;
        }
        Ok(())
    }

    /// Where the accounts live.
    pub fn accounts_from(&self) -> AccountsFrom<'_> {
        match (&self.accounts_dir, &self.registry) {
            (_, Some(registry)) => AccountsFrom::Table(registry),
            (Some(dir), None) => AccountsFrom::Dir(dir),
            (None, None) => unreachable!("a loaded config names accounts_dir or registry"),
        }
    }

    /// This node's name: `node:`, or the host name.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(host_name)
    }

    /// `control:`, the sockets' modes, and `status_listen` apart from `listen`.
    fn check_sockets(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::invalid(file, message));
        if let Some(Address::Tcp(addr)) = &self.control {
            return invalid(format!(
                "control: tcp:{addr} would let anyone who reaches the port change the accounts; \
                 the control socket must be unix:/path (mode 0600, peers checked)"
            ));
        }
        for (key, mode) in [
            ("listen_mode", &self.listen_mode),
            ("status_listen_mode", &self.status_listen_mode),
        ] {
            if let Some(mode) = mode
                && parse_mode(mode).is_none()
            {
                return invalid(format!("{key} {mode:?} is not an octal mode like \"0660\""));
            }
        }
        if self.status_listen.is_some() && self.status_listen == Some(self.listen.clone()) {
            return invalid(
                "status_listen is the listen: address; give the status page a socket of its own"
                    .into(),
            );
        }
        Ok(())
    }

    /// `login:`, the paths plexer answers itself, the routing cookie.
    fn check_routing(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::invalid(file, message));
        if let Some(account) = &self.login.account
            && let Err(err) = AccountName::new(account)
        {
            return invalid(format!("login.account: {err}"));
        }
        if self.login.account.is_some() && self.login.redirect.is_some() {
            return invalid(
                "login: give account (a login app) or redirect (a 302), not both".into(),
            );
        }
        for (key, path) in [
            ("status_path", &self.status_path),
            ("ping_path", &self.ping_path),
        ] {
            if !path.starts_with('/') {
                return invalid(format!("{key} {path:?} must start with '/'"));
            }
        }
        if !is_cookie_name(&self.route.cookie) {
            return invalid(format!(
                "route.cookie {:?} is not a cookie name: use letters, digits, '_' and '-'",
                self.route.cookie
            ));
        }
        if self.route.max_age.0.is_zero() {
            return invalid("route.max_age is 0: every cookie would be expired".into());
        }
        Ok(())
    }

    /// Counts and durations, within what makes sense.
    fn check_bounds(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::invalid(file, message));
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return invalid(format!(
                "threads {} is outside 1..={MAX_THREADS}: give about the number of cores",
                self.threads
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return invalid(format!(
                "max_connections {} is outside 1..={MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        if !STATUS_SAMPLE_INTERVAL_BOUNDS.contains(&self.status_sample_interval.0) {
            return invalid(format!(
                "status_sample_interval {:?} is outside 1s..=60s",
                self.status_sample_interval.0
            ));
        }
        for (key, span) in [
            ("body_timeout", self.body_timeout),
            ("send_timeout", self.send_timeout),
        ] {
            if span.0.is_zero() {
                return invalid(format!(
                    "{key} is 0: every request would time out; give a duration like 10s"
                ));
            }
        }
        Ok(())
    }

    /// The pool template, when it names a command.
    fn check_template(&self, file: &Path) -> Result<(), ConfigError> {
        // Without a command every account names its own (or a socket): checked per account.
        if self.pool.command.is_some() {
            // A user or group naming the account is checked per account, where it has a name.
            let per_account = |key: &Option<String>| {
                key.as_deref()
                    .is_some_and(|text| text.contains("{account}"))
            };
            let mut template = self.pool.clone();
            if per_account(&template.user) || per_account(&template.group) {
                template.user = None;
                template.group = None;
            }
            template
                .plan(&PoolKeys::default(), "template")
                .map_err(|message| ConfigError::invalid(file, format!("pool: {message}")))?;
        }
        Ok(())
    }
}

/// An account file, `accounts.d/NAME.yaml`; every key may be left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFile {
    /// Usernames that map to this account (many to one).
    pub users: Vec<String>,
    /// An app someone else runs: plexer routes to it and manages nothing.
    pub socket: Option<Address>,
    /// Pool keys that override the template; `env` is merged over the template's.
    pub pool: PoolKeys,
}

impl AccountFile {
    /// Parses an account file; `file` names it in errors. A file with no YAML document (empty,
    /// blank or only comments) is refused: the watcher sees exactly that between an editor's
    /// truncation and its write, and it must not start an account with no users. `{}` is an
    /// account with every default.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: Option<pool_keys::AccountKeys> = yaml::parse(text, file)?;
        let raw = raw.ok_or_else(|| ConfigError::Empty {
            file: file.to_owned(),
        })?;
        let (users, socket, pool) = raw.into_parts();
        let socket = socket
            .map(|text| {
                text.parse()
                    .map_err(|err| ConfigError::invalid(file, format!("socket: {err}")))
            })
            .transpose()?;
        if socket.is_some() && pool.command.is_some() {
            return Err(ConfigError::invalid(
                file,
                "socket: and command: together: an account either runs its own workers \
                 (command) or routes to an app someone else runs (socket)",
            ));
        }
        Ok(Self {
            users: users.unwrap_or_default(),
            socket,
            pool,
        })
    }
}

#[cfg(test)]
mod tests;
