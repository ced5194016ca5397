//! The accounts manager: the one place that changes the running set, one change at a time.
//!
//! Every change — `plexer accounts add/remove/reload`, a file dropped in, touched or deleted in
//! accounts_dir, SIGHUP — is checked whole before anything happens, and a change that fails
//! leaves the running set as it was. Account files are changes of their own: a bad one is
//! refused alone (its account, if it runs, keeps its previous version), at start as later, and
//! stays in the snapshot's `refused` until the file is fixed or goes. Reading files and looking
//! users up block (a slow NSS source takes seconds), so they run on blocking threads, never on
//! the runtime's one thread, which relays every request. The order of a change is fixed:
//! 1. validate (parse, names, users unique, where a socket may point);
//! 2. write the registry (atomically) when the change came through the control socket;
//! 3. start what is new: a reload starts a new generation of workers and waits until one of
//!    them serves, and a generation that does not start is stopped again, the old one serving;
//! 4. publish the new snapshot, so new requests route with it;
//! 5. retire what was replaced or removed: its requests in flight finish (bounded by
//!    drain_timeout), then its workers stop and their sockets go.

mod files;
mod stamp;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plexer_prefork::pool::{Outcome, Pm};
use plexer_prefork::supervisor::{Sockets, Supervisor};
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

use crate::account::AccountName;
use crate::cluster::{Table, TableRead};
use crate::config::DEFAULT_SLOW_REQUEST;
use crate::config::{AccountsFrom, AuditMode, Config};
use crate::cookie::Keys;
use crate::exposure::{self, ListenAccess, Verdict, Who};
use crate::in_flight::InFlight;
use crate::live::{AccountCounters, Generation, Snapshot, State, Target};
use crate::registry::{
    Account, AccountRules, Backend, Loaded, RefusedFile, Registry, account_files, read_account_file,
};
use files::{remove_durably, write_atomically};
use stamp::Stamp;

pub use add::AddAccount;
pub(crate) use error::{AccountsError, Changed, LaunchError, NotReady, NotReadyWhy, SpecError};

mod add;
mod error;
mod rows;

use rows::{known_origins, scan_rows};

/// The longest path a unix socket may have (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A long start or pass logs its progress every this many accounts.
const PROGRESS_EVERY: usize = 1000;

/// How long a reloaded account's new workers get to serve a first request before the reload
/// is called failed and the old workers go on serving.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for one of a `socket:` app's connections.
const EXTERNAL_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The request timeout of a `socket:` account, which has no pool keys.
const EXTERNAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Changes the running set; see the module documentation.
pub struct Manager {
    state: Arc<State>,
    supervisor: Supervisor,
    config_file: PathBuf,
    ledger: tokio::sync::Mutex<Ledger>,
    /// Generations being drained, so that a stop can wait for them.
    retiring: TaskTracker,
    /// `--allow-root`: pools without `user:` may run as root (plexer's own user).
    allow_root: bool,
    /// Who may connect to `listen:`: an account whose workers could is warned about, or
    /// refused where the route trusts a param they could send.
    listen_access: ListenAccess,
    /// Where the accounts live, fixed at start (a reload keeps accounts_dir and registry).
    source: Source,
}

/// Where the accounts live: files in accounts_dir, or rows of a PostgreSQL table
/// (`registry:`).
enum Source {
    Dir(PathBuf),
    Table(Arc<Table>),
}

/// What the manager remembers between changes.
struct Ledger {
    /// Each account file's stamp when it was last applied or refused: a file is looked at
    /// again only when it changed, and a bad file is reported once per edit.
    seen: HashMap<PathBuf, Stamp>,
    next_generation: u64,
}

/// What one pass over accounts_dir (or a reload) did.
#[derive(Debug, Default)]
pub struct Applied {
    pub added: Vec<String>,
    pub reloaded: Vec<String>,
    pub removed: Vec<String>,
    /// Changes refused, each with the file and the reason.
    pub refused: Vec<RefusedFile>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.reloaded.is_empty()
            && self.removed.is_empty()
            && self.refused.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("reloaded", &self.reloaded),
            ("removed", &self.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", names.len()));
            }
        }
        if parts.is_empty() {
            parts.push("no account changed".into());
        }
        parts.join(", ")
    }
}

/// The next snapshot, built from the current one.
struct Draft {
    config: Arc<Config>,
    keys: Arc<Keys>,
    registry: Registry,
    running: HashMap<AccountName, Arc<Generation>>,
    refused: BTreeMap<PathBuf, RefusedFile>,
    retire: Vec<Arc<Generation>>,
}

impl Draft {
    fn from(snapshot: &Snapshot) -> Self {
        Self {
            config: Arc::clone(&snapshot.config),
            keys: Arc::clone(&snapshot.keys),
            registry: snapshot.registry.clone(),
            running: snapshot.running.clone(),
            refused: snapshot.refused.clone(),
            retire: Vec::new(),
        }
    }

    /// Records a refused file, for the status page and `plexer accounts list` (replacing what
    /// an earlier version of the file was refused for), and for this change's answer.
    fn refuse(&mut self, applied: &mut Applied, refusal: RefusedFile) {
        self.refused.insert(refusal.file.clone(), refusal.clone());
        applied.refused.push(refusal);
    }

    fn remove(&mut self, name: &AccountName) {
        self.registry.remove(name);
        if let Some(old) = self.running.remove(name) {
            self.retire.push(old);
        }
    }
}

impl Manager {
    /// Loads every account file, starts every account that validates and refuses the others
    /// one by one, naming each (one tenant's bad file must not keep every tenant down), and
    /// returns the manager with the state the connections share. Only an accounts_dir that
    /// cannot be listed refuses the start.
    pub fn start(
        config_file: &Path,
        config: Config,
        keys: Keys,
        supervisor: Supervisor,
        allow_root: bool,
        listen_access: ListenAccess,
    ) -> Result<Arc<Self>, AccountsError> {
        // Worker sockets of an earlier run: nobody else uses this runtime_dir, since the
        // listen socket was bound first.
        let _ = std::fs::remove_dir_all(config.runtime_dir.join("workers"));
        let rules = AccountRules::from_config(&config);
        let mut seen = HashMap::new();
        let mut loaded = Loaded::default();
        let source = match config.accounts_from() {
            AccountsFrom::Dir(dir) => {
                // In sorted file order, so a user claimed twice stays with the same file every
                // start.
                for (file, stamp, account) in scan_dir(dir, &seen, &rules)?.changed {
                    seen.insert(file, stamp);
                    loaded.take(account);
                }
                Source::Dir(dir.to_owned())
            }
            // A table's rows come with the sync task's first read (crate::cluster).
            AccountsFrom::Table(registry) => Source::Table(Arc::new(Table::new(&registry.table))),
        };
        let state = Arc::new(State::new(Snapshot {
            config: Arc::new(config),
            keys: Arc::new(keys),
            registry: Registry::default(),
            running: HashMap::new(),
            refused: BTreeMap::new(),
        }));
        let manager = Arc::new(Self {
            state,
            supervisor,
            config_file: config_file.to_owned(),
            ledger: tokio::sync::Mutex::new(Ledger {
                seen,
                next_generation: 1,
            }),
            retiring: TaskTracker::new(),
            allow_root,
            listen_access,
            source,
        });
        let mut next = Draft::from(&manager.state.snapshot());
        let mut ledger = manager
            .ledger
            .try_lock()
            .expect("nobody else has the manager yet");
        let mut applied = Applied::default();
        for refusal in std::mem::take(&mut loaded.refused) {
            next.refuse(&mut applied, refusal);
        }
        manager.start_accounts(&mut ledger, &mut next, loaded.registry, &mut applied);
        drop(ledger);
        manager.publish(next);
        log_refused(&applied);
        Ok(manager)
    }

    /// Starts a first generation of every account in `registry`; one that cannot start is
    /// refused alone.
    fn start_accounts(
        &self,
        ledger: &mut Ledger,
        next: &mut Draft,
        mut registry: Registry,
        applied: &mut Applied,
    ) {
        let total = registry.len();
        let accounts: Vec<Account> = registry.accounts().cloned().collect();
        for (started, account) in accounts.into_iter().enumerate() {
            match self.launch(ledger, &account, &next.config, Arc::default()) {
                Ok(running) => {
                    next.running.insert(account.name.clone(), Arc::new(running));
                }
                Err(why) => {
                    registry.remove(&account.name);
                    let why = AccountsError::Start {
                        file: account.file.clone(),
                        name: account.name.clone(),
                        why,
                    };
                    next.refuse(applied, RefusedFile::new(&account.file, None, why));
                }
            }
            if (started + 1) % PROGRESS_EVERY == 0 {
                tracing::info!("starting accounts: {} of {total}", started + 1);
            }
        }
        next.registry = registry;
    }

    /// The state every connection routes with.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The shared table, when the accounts live in one.
    pub fn table(&self) -> Option<&Arc<Table>> {
        match &self.source {
            Source::Table(table) => Some(table),
            Source::Dir(_) => None,
        }
    }

    /// Starts one generation of an account.
    fn launch(
        &self,
        ledger: &mut Ledger,
        account: &Account,
        config: &Config,
        counters: Arc<AccountCounters>,
    ) -> Result<Generation, LaunchError> {
        let generation = ledger.next_generation;
        ledger.next_generation += 1;
        let mut exposed = None;
        let mut slowlog_dump = None;
        let (target, request_timeout, slow_request, audit, sockets_dir) = match &account.backend {
            Backend::Managed(plan) => {
                runs_as_root_only_if_asked(plan, self.allow_root)?;
                exposed = reaches_listen(plan, config, self.listen_access)?;
                if let Some(why) = &exposed {
                    tracing::warn!(account = %account.name, "{why}");
                }
                // Built from the checked account name and a counter, never from client text.
                let dir = config
                    .runtime_dir
                    .join("workers")
                    .join(format!("{}.{generation}", account.name));
                // sun_path holds 107 bytes: say so here rather than fail every spawn.
                let longest = dir.join("999999999.sock");
                if longest.as_os_str().len() > MAX_SOCKET_PATH {
                    return Err(LaunchError::SocketPathTooLong {
                        length: longest.as_os_str().len(),
                        limit: MAX_SOCKET_PATH,
                    });
                }
                let pool = self.supervisor.add_pool(
                    account.name.as_str(),
                    plan.settings.clone(),
                    plan.command.clone(),
                    Sockets::PerWorker(dir.clone()),
                )?;
                let target = Target::Pool(pool);
                slowlog_dump = plan.slowlog_dump.clone();
                (
                    target,
                    plan.request_timeout,
                    plan.slow_request,
                    plan.audit,
                    Some(dir),
                )
            }
            Backend::External {
                address,
                max_connections,
            } => {
                let app = crate::upstream::External::new(
                    address.clone(),
                    *max_connections,
                    EXTERNAL_QUEUE_TIMEOUT,
                );
                let (timeout, slow) = (EXTERNAL_REQUEST_TIMEOUT, Some(DEFAULT_SLOW_REQUEST));
                (
                    Target::External(Arc::new(app)),
                    timeout,
                    slow,
                    AuditMode::Off,
                    None,
                )
            }
        };
        Ok(Generation {
            target,
            counters,
            generation,
            request_timeout,
            slow_request,
            slowlog_dump,
            in_flight: InFlight::default(),
            audit,
            sockets_dir,
            exposed,
        })
    }

    /// Makes `next` the running set and retires what it replaced.
    fn publish(&self, next: Draft) {
        let drain_timeout = next.config.drain_timeout.0;
        self.state.publish(Snapshot {
            config: next.config,
            keys: next.keys,
            registry: next.registry,
            running: next.running,
            refused: next.refused,
        });
        for old in next.retire {
            self.retire(old, drain_timeout);
        }
    }

    /// Drains a generation in the background: its requests in flight finish within
    /// `timeout`, then its workers stop and their socket directory goes.
    fn retire(&self, old: Arc<Generation>, timeout: Duration) {
        self.retiring.spawn(async move {
            if let Target::Pool(pool) = &old.target {
                pool.drain(timeout).await;
            }
            if let Some(dir) = &old.sockets_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        });
    }

    /// Looks at accounts_dir again and applies what changed: the watcher and SIGHUP call this.
    pub async fn apply_dir(&self) -> Applied {
        let mut ledger = self.ledger.lock().await;
        let mut next = Draft::from(&self.state.snapshot());
        let mut applied = Applied::default();
        let rules = AccountRules::from_config(&next.config);
        self.rescan(&mut ledger, &mut next, &rules, &mut applied)
            .await;
        self.publish(next);
        log_applied(&applied);
        applied
    }

    async fn rescan(
        &self,
        ledger: &mut Ledger,
        next: &mut Draft,
        rules: &AccountRules,
        applied: &mut Applied,
    ) {
        // The watcher runs for accounts_dir only; a table's changes come as notifications.
        let Source::Dir(dir) = &self.source else {
            return;
        };
        let scan = Self::scan(ledger, dir, rules).await;
        self.apply_scan(ledger, next, scan, applied).await;
    }

    /// Lists accounts_dir, stamps every file and reads and checks those that changed, off the
    /// runtime's thread: with 10,000 accounts that is 10,000 stat calls (and a user lookup per
    /// changed account), which would hold up every request being relayed.
    async fn scan(
        ledger: &mut Ledger,
        dir: &Path,
        rules: &AccountRules,
    ) -> Result<Scan, crate::config::ConfigError> {
        let (dir, rules) = (dir.to_owned(), rules.clone());
        let seen = std::mem::take(&mut ledger.seen);
        let (seen, scan) = off_thread(move || {
            let scan = scan_dir(&dir, &seen, &rules);
            (seen, scan)
        })
        .await;
        ledger.seen = seen;
        scan
    }

    /// Applies a [`scan`](Self::scan): accounts whose file is gone are removed, changed files
    /// are added or reloaded, bad ones refused.
    async fn apply_scan(
        &self,
        ledger: &mut Ledger,
        next: &mut Draft,
        scan: Result<Scan, crate::config::ConfigError>,
        applied: &mut Applied,
    ) {
        let Scan { files, changed } = match scan {
            Ok(scan) => scan,
            Err(err) => {
                next.refuse(applied, RefusedFile::of_file(err));
                return;
            }
        };
        let present: HashSet<&PathBuf> = files.iter().collect();
        // A refusal goes with its file; so does one of accounts_dir itself, now listed again.
        next.refused.retain(|file, _| present.contains(file));
        let gone: Vec<AccountName> = next
            .registry
            .accounts()
            .filter(|a| !present.contains(&a.file))
            .map(|a| a.name.clone())
            .collect();
        for name in gone {
            if let Some(account) = next.registry.get(&name) {
                ledger.seen.remove(&account.file);
            }
            next.remove(&name);
            applied.removed.push(name.to_string());
        }
        ledger.seen.retain(|file, _| present.contains(file));
        let mut accounts = Vec::new();
        for (file, stamp, account) in changed {
            // A new version of the file: what its old one was refused for no longer holds.
            next.refused.remove(&file);
            ledger.seen.insert(file, stamp);
            match account {
                Ok(account) => accounts.push(account),
                // The account, if it runs, keeps running its previous version.
                Err(refused) => next.refuse(applied, refused),
            }
        }
        self.apply_accounts(ledger, next, accounts, applied).await;
    }

    /// Adds the new accounts among `accounts` and starts a new generation of the others.
    async fn apply_accounts(
        &self,
        ledger: &mut Ledger,
        next: &mut Draft,
        accounts: Vec<Account>,
        applied: &mut Applied,
    ) {
        // Users first: an edit may move a user from one account to another in one pass.
        let old: HashMap<AccountName, Arc<Account>> = accounts
            .iter()
            .filter_map(|a| Some((a.name.clone(), next.registry.remove(&a.name)?)))
            .collect();
        let mut accepted = Vec::new();
        for account in accounts {
            match next.registry.insert(account.clone()) {
                Ok(()) => accepted.push(account),
                Err(err) => next.refuse(applied, RefusedFile::new(&account.file, None, err)),
            }
        }
        let mut probes = tokio::task::JoinSet::new();
        // The generation each reloaded account runs now, until its new one proved ready.
        let mut previous_running = HashMap::new();
        for account in accepted {
            let previous = next.running.get(&account.name).cloned();
            let counters = previous
                .as_ref()
                .map_or_else(Arc::default, |p| Arc::clone(&p.counters));
            match self.launch(ledger, &account, &next.config, counters) {
                Ok(running) => {
                    let running = Arc::new(running);
                    match previous {
                        Some(previous) => {
                            previous_running.insert(account.name.clone(), previous);
                            let (name, probe) = (account.name.clone(), Arc::clone(&running));
                            let file = account.file.clone();
                            probes.spawn(async move {
                                let result = ready(&probe).await;
                                (name, file, probe, result)
                            });
                        }
                        None => applied.added.push(account.name.to_string()),
                    }
                    next.running.insert(account.name.clone(), running);
                }
                Err(why) => {
                    let why = AccountsError::Start {
                        file: account.file.clone(),
                        name: account.name.clone(),
                        why,
                    };
                    next.refuse(applied, RefusedFile::new(&account.file, None, why));
                    next.registry.remove(&account.name);
                    if let Some(previous) = old.get(&account.name) {
                        restore(ledger, next, previous, applied);
                    }
                }
            }
        }
        // Accounts whose change was refused keep their old version.
        for (name, previous) in &old {
            if !next.registry.contains(name) {
                restore(ledger, next, previous, applied);
            }
        }
        while let Some(done) = probes.join_next().await {
            let Ok((name, file, probe, result)) = done else {
                continue;
            };
            let previous = previous_running.remove(&name);
            let proven = Proven {
                name,
                file,
                probe,
                previous,
            };
            settle(ledger, next, &old, proven, result, applied);
        }
    }

    /// `plexer accounts add`: validate, write the file, start, and only then answer.
    pub async fn add(&self, request: &AddAccount) -> Result<Changed, AccountsError> {
        let name = AccountName::new(&request.name)?;
        let text = request.file_text()?;
        let mut ledger = self.ledger.lock().await;
        let mut next = Draft::from(&self.state.snapshot());
        let dir = match &self.source {
            Source::Dir(dir) => dir.clone(),
            Source::Table(table) => {
                return self.add_row(table, &mut ledger, next, name, text).await;
            }
        };
        let path = dir.join(format!("{name}.yaml"));
        if next.registry.contains(&name) {
            return Err(AccountsError::Exists { name, file: path });
        }
        let rules = AccountRules::from_config(&next.config);
        let account = {
            let (name, path, text) = (name.clone(), path.clone(), text.clone());
            off_thread(move || new_account(name, &path, &text, &rules)).await?
        };
        // `next` is this change's own copy: a refusal from here on drops it, changing nothing.
        next.registry.insert(account.clone())?;
        let stamp = {
            let (dir, name, text) = (dir.clone(), name.to_string(), text.clone());
            off_thread(move || {
                let path = write_atomically(&dir, &name, &text)?;
                Ok::<_, AccountsError>(Stamp::of(&path).ok())
            })
            .await?
        };
        if let Some(stamp) = stamp {
            ledger.seen.insert(path.clone(), stamp);
        }
        let running = match self.launch(&mut ledger, &account, &next.config, Arc::default()) {
            Ok(running) => running,
            Err(why) => {
                ledger.seen.remove(&path);
                let removed = path.clone();
                let _ = off_thread(move || remove_durably(&removed)).await;
                return Err(AccountsError::Start {
                    file: path,
                    name,
                    why,
                });
            }
        };
        Ok(self.publish_added(next, &account, running))
    }

    /// Publishes `next` with `account` running `running`: the end of every add.
    fn publish_added(&self, mut next: Draft, account: &Account, running: Generation) -> Changed {
        let name = account.name.clone();
        let starts = starts_how(account);
        next.running.insert(name.clone(), Arc::new(running));
        self.publish(next);
        tracing::info!(account = %name, "account added");
        Changed::Added { name, starts }
    }

    /// Forgets account `name`, whose source `origin` is gone, and publishes: the end of every
    /// removal. Its requests in flight finish within drain_timeout.
    fn publish_removed(
        &self,
        ledger: &mut Ledger,
        mut next: Draft,
        name: AccountName,
        origin: &Path,
    ) -> Changed {
        ledger.seen.remove(origin);
        next.refused.remove(origin);
        next.remove(&name);
        let drain = next.config.drain_timeout;
        self.publish(next);
        tracing::info!(account = %name, "account removed");
        Changed::Removed { name, drain }
    }

    /// `plexer accounts remove`: the file goes first, then the routes; requests in flight
    /// finish within drain_timeout. A refused file of that name that runs nothing is removed
    /// too.
    pub async fn remove(&self, name: &str) -> Result<Changed, AccountsError> {
        let name = AccountName::new(name)?;
        let mut ledger = self.ledger.lock().await;
        let next = Draft::from(&self.state.snapshot());
        if let Source::Table(table) = &self.source {
            return self.remove_row(table, &mut ledger, next, name).await;
        }
        let refused_file = || {
            let refusal = next
                .refused
                .values()
                .find(|r| r.account.as_ref() == Some(&name));
            refusal.map(|r| r.file.clone())
        };
        let file = match next.registry.get(&name) {
            Some(account) => account.file.clone(),
            None => refused_file().ok_or_else(|| AccountsError::Missing { name: name.clone() })?,
        };
        let removed = file.clone();
        off_thread(move || remove_durably(&removed)).await?;
        Ok(self.publish_removed(&mut ledger, next, name, &file))
    }

    /// `plexer accounts reload NAME`: the account from its file again, as a new generation;
    /// also how an operator clears a crash loop or an audit stop. The file is read and checked
    /// (its users looked up) off the runtime's thread.
    pub async fn reload(&self, name: &str) -> Result<Changed, AccountsError> {
        let mut ledger = self.ledger.lock().await;
        let mut next = Draft::from(&self.state.snapshot());
        let name = AccountName::new(name)?;
        let dir = match &self.source {
            Source::Dir(dir) => dir.clone(),
            Source::Table(table) => return self.reload_row(table, &mut ledger, next, name).await,
        };
        let file = dir.join(format!("{name}.yaml"));
        let known = next.registry.contains(&name);
        let rules = AccountRules::from_config(&next.config);
        let found = {
            let file = file.clone();
            off_thread(move || reread(&file, known, &rules)).await
        };
        let Some((stamp, account)) = found else {
            return Err(AccountsError::NoFile { name, file });
        };
        // This version of the file replaces whatever an earlier one was refused for.
        next.refused.remove(&file);
        let mut applied = Applied::default();
        match account {
            Ok(account) => {
                self.apply_accounts(&mut ledger, &mut next, vec![account], &mut applied)
                    .await;
            }
            Err(refused) => next.refuse(&mut applied, refused),
        }
        if let Some(stamp) = stamp {
            ledger.seen.insert(file, stamp);
        }
        self.publish(next);
        log_applied(&applied);
        if let Some(refused) = applied.refused.into_iter().next() {
            return Err(refused.into());
        }
        let new = !applied.added.is_empty();
        Ok(Changed::Reloaded { name, new })
    }

    /// SIGHUP, or `plexer accounts reload` without a name: the config and every account file
    /// again. A config that does not validate changes nothing; what did not change is left
    /// alone.
    pub async fn reload_all(&self) -> Result<Applied, AccountsError> {
        let mut ledger = self.ledger.lock().await;
        let snapshot = self.state.snapshot();
        let mut next = Draft::from(&snapshot);
        let config_file = self.config_file.clone();
        let (mut config, keys) = off_thread(move || {
            let config = Config::load(&config_file)?;
            let keys = Keys::load(&config.secret_file)?;
            Ok::<_, AccountsError>((config, keys))
        })
        .await?;
        for kept in keep_what_needs_a_restart(&snapshot.config, &mut config) {
            tracing::warn!("{kept} changed in the config: that takes effect at the next start");
        }
        let old_rules = AccountRules::from_config(&snapshot.config);
        let rules = AccountRules::from_config(&config);
        // Files edited since they were applied (or gone) are the scan's to apply; so are the
        // rows of a table, read again whole.
        let scan = match &self.source {
            Source::Table(table) => match table.read_every_row().await {
                Ok(rows) => {
                    let (seen, known) = (ledger.seen.clone(), known_origins(&next));
                    let (table, rules) = (Arc::clone(table), rules.clone());
                    let read = TableRead::Whole(rows);
                    Ok(off_thread(move || scan_rows(&table, read, &seen, known, &rules)).await)
                }
                // The config still applies to the accounts this node has; their rows are read
                // again when the connection is back.
                Err(err @ crate::cluster::TableError::Unreachable { .. }) => {
                    tracing::warn!(error = %err, "reload: the config applies to the accounts this node has; the table is read again when PostgreSQL is back");
                    Ok(Scan {
                        files: {
                            let mut files = known_origins(&next);
                            files.sort();
                            files
                        },
                        changed: Vec::new(),
                    })
                }
                Err(err) => return Err(err.into()),
            },
            Source::Dir(dir) => Self::scan(&mut ledger, dir, &rules).await,
        };
        // Every other account is checked against the new config before anything is applied.
        let scan = off_thread({
            let (snapshot, rules) = (Arc::clone(&snapshot), rules.clone());
            move || {
                let changed_files = scan.as_ref().ok().map(Scan::changed_files);
                let skip = scan.as_ref().ok().zip(changed_files.as_ref());
                let changed = changed_by_template(&snapshot, &old_rules, &rules, skip);
                (scan, changed)
            }
        })
        .await;
        let (scan, changed) = (scan.0, scan.1?);
        next.config = Arc::new(config);
        next.keys = Arc::new(keys);
        let mut applied = Applied::default();
        self.apply_accounts(&mut ledger, &mut next, changed, &mut applied)
            .await;
        self.apply_scan(&mut ledger, &mut next, scan, &mut applied)
            .await;
        self.publish(next);
        log_applied(&applied);
        Ok(applied)
    }

    /// Stops an account's generation that the fork-safety audit caught: its requests get a
    /// 503 saying why until the operator reloads the account.
    pub async fn stop_for_audit(&self, name: &AccountName, generation: u64, why: String) {
        let _books = self.ledger.lock().await;
        let mut next = Draft::from(&self.state.snapshot());
        let Some(current) = next.running.get(name).cloned() else {
            return;
        };
        if current.generation != generation {
            return;
        }
        tracing::error!(account = %name, stopped_by = "audit", finding = %why, "{why}: the account is stopped until `plexer accounts reload {name}`");
        next.running
            .insert(name.clone(), Arc::new(current.stopped(why)));
        self.publish(next);
        // At once: the workers share a database connection.
        self.retire(current, Duration::ZERO);
    }

    /// `plexer accounts list`.
    pub fn list(&self) -> Value {
        let snapshot = self.state.snapshot();
        let accounts: Vec<Value> = snapshot
            .registry
            .accounts()
            .map(|account| {
                let running = snapshot.running.get(&account.name);
                let (kind, state) = match running.map(|r| &r.target) {
                    Some(Target::Pool(pool)) => (
                        "managed".to_owned(),
                        crate::live::pool_state(&pool.status().state),
                    ),
                    Some(Target::External(external)) => {
                        (format!("socket {}", external.address), "routed".into())
                    }
                    Some(Target::Stopped { why }) => ("managed".into(), format!("stopped: {why}")),
                    None => ("managed".into(), "not running".into()),
                };
                json!({
                    "account": account.name.as_str(),
                    "users": account.users,
                    "kind": kind,
                    "state": state,
                    "generation": running.map(|r| r.generation),
                    "file": account.file.display().to_string(),
                })
            })
            .collect();
        // Refused files after the accounts: an account whose edit was refused is listed twice,
        // running its previous version and refused as its file now stands.
        let refused = snapshot.refused.values().map(|refusal| {
            let mut entry = refusal.to_json();
            merge(
                &mut entry,
                json!({ "users": [], "kind": "refused", "state": "refused", "generation": null }),
            );
            entry
        });
        Value::Array(accounts.into_iter().chain(refused).collect())
    }

    /// Stops every account: requests in flight finish within `timeout`.
    pub async fn stop(&self, timeout: Duration) {
        let _books = self.ledger.lock().await;
        let snapshot = self.state.snapshot();
        for running in snapshot.running.values() {
            self.retire(Arc::clone(running), timeout);
        }
        self.retiring.close();
        self.retiring.wait().await;
    }
}

/// A pool without `user:` runs as plexer's own user: refused when that is root, unless
/// `user: root` is written or `--allow-root` was given (php-fpm's rule: one tenant as root owns
/// the machine and every other tenant).
pub(crate) fn runs_as_root_only_if_asked(
    plan: &crate::config::PoolPlan,
    allow_root: bool,
) -> Result<(), LaunchError> {
    let as_root = plan.command.identity.is_none() && nix::unistd::geteuid().is_root();
    match as_root && !allow_root {
        true => Err(LaunchError::AsRoot),
        false => Ok(()),
    }
}

/// Whether the pool's workers could connect to `listen:` (see [`crate::exposure`]): `Some`
/// with what to say of it, or refused where the route trusts a param they could send.
pub(crate) fn reaches_listen(
    plan: &crate::config::PoolPlan,
    config: &Config,
    listen: ListenAccess,
) -> Result<Option<String>, LaunchError> {
    let who = Who::of_pool(plan.command.identity.as_ref());
    let Some(reach) = exposure::reach(listen, &who) else {
        return Ok(None);
    };
    match exposure::verdict(reach, config) {
        Verdict::Warn(why) => Ok(Some(why)),
        Verdict::Refuse(why) => Err(LaunchError::SharedUser(why)),
    }
}

/// Serves one request through a new generation and gives the worker back: a generation that
/// cannot do that is not given traffic.
async fn ready(running: &Generation) -> Result<(), NotReady> {
    let Target::Pool(pool) = &running.target else {
        return Ok(());
    };
    // A worker of the new generation that fails before any served (a program that is not
    // there, a config it refuses) fails the reload at once, not after the queue timeout.
    let failed_early = async {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        loop {
            tick.tick().await;
            if pool.failures() > 0 {
                break;
            }
        }
    };
    let outcome = tokio::time::timeout(READY_TIMEOUT, async {
        tokio::select! {
            acquired = pool.acquire() => Some(acquired),
            () = failed_early => None,
        }
    })
    .await;
    let why = match outcome {
        Ok(Some(Ok(lease))) => {
            lease.release(Outcome::Unused);
            return Ok(());
        }
        Ok(Some(Err(refusal))) => NotReadyWhy::Refused(refusal),
        Ok(None) => NotReadyWhy::FailedEarly,
        Err(_) => NotReadyWhy::NoneWithin(READY_TIMEOUT),
    };
    let last_failure = pool.status().stats.last_failure.map(|(_, failure)| failure);
    Err(NotReady { why, last_failure })
}

/// A reloaded account's new generation, tried with one request, and the one it replaces.
struct Proven {
    name: AccountName,
    file: PathBuf,
    probe: Arc<Generation>,
    previous: Option<Arc<Generation>>,
}

/// Keeps a new generation that served its probe, retiring the old one; or puts the old one
/// (and its account) back.
fn settle(
    ledger: &mut Ledger,
    next: &mut Draft,
    old: &HashMap<AccountName, Arc<Account>>,
    Proven {
        name,
        file,
        probe,
        previous,
    }: Proven,
    result: Result<(), NotReady>,
    applied: &mut Applied,
) {
    let why = match result {
        Ok(()) => {
            applied.reloaded.push(name.to_string());
            next.retire.extend(previous);
            return;
        }
        Err(why) => why,
    };
    let not_ready = AccountsError::NotReady {
        file: file.display().to_string(),
        name: name.clone(),
        why,
    };
    next.refuse(applied, RefusedFile::new(&file, None, not_ready));
    // The failed generation goes; the previous one is put back.
    next.retire.push(probe);
    if let Some(previous) = previous {
        next.running.insert(name.clone(), previous);
    }
    if let Some(account) = old.get(&name) {
        next.registry.remove(&name);
        restore(ledger, next, account, applied);
    }
}

/// Puts an account's previous version back, with the generation the current snapshot runs.
fn restore(ledger: &mut Ledger, next: &mut Draft, previous: &Arc<Account>, applied: &mut Applied) {
    if let Err(err) = next.registry.insert((**previous).clone()) {
        // Another account took its users in this pass: it cannot be routed, so it goes, and
        // its file is looked at again by the next pass.
        tracing::error!(account = %previous.name, "the account is stopped: {err}");
        next.remove(&previous.name);
        ledger.seen.remove(&previous.file);
        next.refuse(applied, RefusedFile::new(&previous.file, None, err));
    }
}

/// How a new account's workers start, for the answer to `add`.
fn starts_how(account: &Account) -> &'static str {
    match &account.backend {
        Backend::External { .. } => "requests are routed to its socket",
        Backend::Managed(plan) => match plan.settings.pm {
            Pm::Ondemand { .. } => "routable now; its first worker starts on its first request",
            Pm::Static | Pm::Dynamic { .. } => "routable now; its workers are starting",
        },
    }
}

/// Keeps the old values of what cannot change while running, and names them.
fn keep_what_needs_a_restart(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.listen != old.listen
        || new.listen_mode != old.listen_mode
        || new.listen_owner != old.listen_owner
        || new.listen_group != old.listen_group
    {
        new.listen = old.listen.clone();
        new.listen_mode = old.listen_mode.clone();
        new.listen_owner = old.listen_owner.clone();
        new.listen_group = old.listen_group.clone();
        kept.push("listen");
    }
    if new.control != old.control {
        new.control = old.control.clone();
        kept.push("control");
    }
    if new.threads != old.threads {
        new.threads = old.threads;
        kept.push("threads");
    }
    if new.scheduling != old.scheduling {
        new.scheduling = old.scheduling;
        kept.push("scheduling");
    }
    if new.access_log != old.access_log {
        new.access_log = old.access_log.clone();
        kept.push("access_log");
    }
    if new.status_listen != old.status_listen
        || new.status_listen_mode != old.status_listen_mode
        || new.status_listen_group != old.status_listen_group
    {
        new.status_listen = old.status_listen.clone();
        new.status_listen_mode = old.status_listen_mode.clone();
        new.status_listen_group = old.status_listen_group.clone();
        kept.push("status_listen");
    }
    if new.runtime_dir != old.runtime_dir {
        new.runtime_dir = old.runtime_dir.clone();
        kept.push("runtime_dir");
    }
    if new.accounts_dir != old.accounts_dir || new.registry != old.registry {
        new.accounts_dir = old.accounts_dir.clone();
        new.registry = old.registry.clone();
        kept.push("accounts_dir and registry");
    }
    if new.node != old.node {
        new.node = old.node.clone();
        kept.push("node");
    }
    kept
}

/// Each refused file, loudly: the account it names (if any) does not run as written.
fn log_refused(applied: &Applied) {
    for refusal in &applied.refused {
        let account = refusal.account.as_ref().map(AccountName::as_str);
        tracing::error!(refused = %refusal, file = %refusal.file.display(), line = refusal.line, account, "refused: {refusal}");
    }
}

fn log_applied(applied: &Applied) {
    log_refused(applied);
    if applied.is_empty() {
        return;
    }
    tracing::info!(
        added = ?applied.added,
        reloaded = ?applied.reloaded,
        removed = ?applied.removed,
        "accounts: {}",
        applied.summary()
    );
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// `add`'s checks that block: whether the file exists, and the account's users and groups
/// looked up (NSS may ask LDAP and take seconds).
fn new_account(
    name: AccountName,
    path: &Path,
    text: &str,
    rules: &AccountRules,
) -> Result<Account, AccountsError> {
    if path.exists() {
        return Err(AccountsError::Exists {
            name,
            file: path.to_owned(),
        });
    }
    Ok(Registry::account(path, text, rules)?)
}

/// `reload NAME`'s reading and checking, which block: `None` when there is no such file nor
/// account; else the file's stamp (taken before the read) and its account or refusal.
fn reread(
    file: &Path,
    known: bool,
    rules: &AccountRules,
) -> Option<(Option<Stamp>, Result<Account, RefusedFile>)> {
    if !known && !file.exists() {
        return None;
    }
    let stamp = Stamp::of(file).ok();
    let account = read_account_file(file)
        .and_then(|text| Registry::account(file, &text, rules))
        .map_err(RefusedFile::of_file);
    Some((stamp, account))
}

/// Runs blocking work (file I/O that syncs to disk, user lookups) on a blocking thread: the
/// runtime's one thread relays every request.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("file I/O does not panic")
}

/// What a pass over accounts_dir (or a read of the table) found: every account file there
/// (every row's origin), and the stamp and account (or why it is refused) of each whose stamp
/// differs from what was applied.
struct Scan {
    files: Vec<PathBuf>,
    changed: Vec<(PathBuf, Stamp, Result<Account, RefusedFile>)>,
}

impl Scan {
    /// The files this scan applies itself: those changed since they were applied. (A file
    /// gone is not among `files`, which are sorted.)
    fn changed_files(&self) -> HashSet<PathBuf> {
        self.changed
            .iter()
            .map(|(file, _, _)| file.clone())
            .collect()
    }

    fn lists(&self, file: &PathBuf) -> bool {
        self.files.binary_search(file).is_ok()
    }
}

/// The accounts whose effective pool changes when the template goes from `old` to `new`,
/// checked against `new`, leaving out the files `scan` applies itself (blocking: each check
/// may look up the account's user).
fn changed_by_template(
    snapshot: &Snapshot,
    old: &AccountRules,
    new: &AccountRules,
    scan: Option<(&Scan, &HashSet<PathBuf>)>,
) -> Result<Vec<Account>, AccountsError> {
    let mut changed = Vec::new();
    for account in snapshot.registry.accounts() {
        if let Some((scan, changed_files)) = scan
            && (changed_files.contains(&account.file) || !scan.lists(&account.file))
        {
            continue;
        }
        let rebuilt = Registry::account_from(&account.file, account.written.clone(), new)
            .map_err(AccountsError::WithNewConfig)?;
        let pool = &account.written.pool;
        if pool.over(&old.template) != pool.over(&new.template) {
            changed.push(rebuilt);
        }
    }
    Ok(changed)
}

/// Lists accounts_dir and reads and checks the files that changed since `seen` (blocking I/O).
fn scan_dir(
    dir: &Path,
    seen: &HashMap<PathBuf, Stamp>,
    rules: &AccountRules,
) -> Result<Scan, crate::config::ConfigError> {
    let files = account_files(dir)?;
    let mut changed = Vec::new();
    for (looked_at, file) in files.iter().enumerate() {
        if (looked_at + 1) % PROGRESS_EVERY == 0 {
            tracing::info!(
                "accounts_dir: looked at {} of {} files, {} changed",
                looked_at + 1,
                files.len(),
                changed.len()
            );
        }
        // Stamped before it is read: an edit after the read is seen as a change later.
        let Ok(stamp) = Stamp::of(file) else {
            continue; // gone since the listing: the next event removes it
        };
        if seen.get(file) != Some(&stamp) {
            let account = read_account_file(file)
                .and_then(|text| Registry::account(file, &text, rules))
                .map_err(RefusedFile::of_file);
            changed.push((file.clone(), stamp, account));
        }
    }
    Ok(Scan { files, changed })
}
