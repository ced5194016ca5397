//! The account registry: `accounts_dir`, one `NAME.yaml` per account (CONTRACT.md).
//!
//! Loading refuses file by file: every file is read and checked, a file that does not validate
//! is refused alone and named (a [`RefusedFile`]: the file, its line where the YAML parser gives
//! one, and why), and every other account loads. One tenant's typo must not keep every tenant
//! down at the next restart. Files are taken in sorted order, so when two files claim the same
//! user the later one is refused, naming the earlier, the same way at every start. The name
//! comes from the file name and is checked like any account name; files that are not `*.yaml`,
//! or start with a dot (editors' and our own temporary files), are not accounts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use plexer_fcgi::Address;

use crate::account::AccountName;
use crate::config::{AccountFile, Config, ConfigError, PoolKeys, PoolPlan};

/// Where an account's requests go.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Workers plexer runs and supervises.
    Managed(Box<PoolPlan>),
    /// An app someone else runs (`socket:`): plexer only routes to it, over at most
    /// `max_connections` connections (its `max_children`: the app's processes).
    External {
        address: Address,
        max_connections: usize,
    },
}

/// The connections to a `socket:` app when neither its file nor the template says
/// `max_children`.
pub(crate) const EXTERNAL_CONNECTIONS: usize = 4;

/// One account, ready to serve.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: AccountName,
    pub users: Vec<String>,
    pub backend: Backend,
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// The file's keys as written, so that a new template can tell whether it changes them.
    pub written: AccountFile,
}

/// What every account file is checked against: the config's `pool:` template and where a
/// `socket:` may point.
#[derive(Clone, Debug, Default)]
pub struct AccountRules {
    pub template: PoolKeys,
    /// plexer's own worker sockets live here: an account naming one would bypass routing.
    pub runtime_dir: PathBuf,
    /// When not empty, the only directories a unix `socket:` may be in (`socket_dirs:`).
    pub socket_dirs: Vec<PathBuf>,
}

impl AccountRules {
    pub fn from_config(config: &Config) -> Self {
        let mut template = config.pool.clone();
        // The config's top-level `audit:` is the default of every pool's.
        template.audit = template.audit.or(Some(config.audit));
        Self {
            template,
            runtime_dir: config.runtime_dir.clone(),
            socket_dirs: config.socket_dirs.clone(),
        }
    }

    /// Rules with only a template, for tests and tools.
    pub fn with_template(template: PoolKeys) -> Self {
        Self {
            template,
            ..Self::default()
        }
    }

    /// Why a unix `socket:` path may not be used, if it may not.
    fn refuse_socket(&self, path: &Path) -> Option<String> {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Some(format!(
                "socket: {} must be an absolute path without '..'",
                path.display()
            ));
        }
        if !self.runtime_dir.as_os_str().is_empty() && path.starts_with(&self.runtime_dir) {
            return Some(format!(
                "socket: {} is inside runtime_dir {}, where plexer's own workers listen; an \
                 account may not route to another account's workers",
                path.display(),
                self.runtime_dir.display()
            ));
        }
        if !self.socket_dirs.is_empty() && !self.socket_dirs.iter().any(|d| path.starts_with(d)) {
            let dirs: Vec<String> = self
                .socket_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Some(format!(
                "socket: {} is outside socket_dirs ({}): put the app's socket there or add its \
                 directory to socket_dirs in the config",
                path.display(),
                dirs.join(", ")
            ));
        }
        None
    }
}

/// Every account, by name and by user. A change clones it: the accounts themselves are shared
/// (`Arc`), the maps of names and users are copied.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    accounts: BTreeMap<AccountName, Arc<Account>>,
    users: HashMap<String, AccountName>,
}

/// The account files of a directory: `*.yaml` not starting with a dot (editors' and our own
/// temporary files), sorted.
pub(crate) fn account_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|error| ConfigError::Read {
        file: dir.to_owned(),
        error,
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| ConfigError::Read {
            file: dir.to_owned(),
            error,
        })?;
        let path = entry.path();
        if is_account_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a path names an account file (`NAME.yaml`, not hidden).
pub(crate) fn is_account_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_none_or(|name| name.to_string_lossy().starts_with('.'));
    !hidden && path.extension().is_some_and(|ext| ext == "yaml")
}

/// An account file's text. Opened without blocking and refused unless it is a regular file: a
/// FIFO named `x.yaml` would otherwise stall whoever reads it, the request path included.
pub(crate) fn read_account_file(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_failed = |error| ConfigError::Read {
        file: file.to_owned(),
        error,
    };
    let mut opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(file)
        .map_err(read_failed)?;
    if !opened.metadata().map_err(read_failed)?.is_file() {
        return Err(ConfigError::NotAFile {
            file: file.to_owned(),
        });
    }
    let mut text = String::new();
    opened.read_to_string(&mut text).map_err(read_failed)?;
    Ok(text)
}

/// An account file that does not run as written, and why: shown by `plexer accounts list`,
/// the status page and `plexer serve --check` until the file is fixed or removed.
///
/// The cause stays the error itself, rendered only where a person reads it; it is type-erased
/// because the registry sits below the accounts manager, whose errors (a pool that did not
/// start) are refusals too.
#[derive(Clone, Debug)]
pub struct RefusedFile {
    pub file: PathBuf,
    /// The account the file names, when its name is an account name.
    pub account: Option<AccountName>,
    /// The line of the problem, where the YAML parser gave one.
    pub line: Option<usize>,
    pub why: Arc<dyn std::error::Error + Send + Sync>,
}

impl RefusedFile {
    pub fn new(
        file: &Path,
        line: Option<usize>,
        why: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let account = file
            .file_stem()
            .and_then(|stem| AccountName::new(&stem.to_string_lossy()).ok());
        Self {
            file: file.to_owned(),
            account,
            line,
            why: Arc::new(why),
        }
    }

    /// The refusal as `plexer accounts list` and the status page's `refused` show it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file.display().to_string(),
            "account": self.account.as_ref().map(AccountName::as_str),
            "line": self.line,
            "reason": self.to_string(),
        })
    }

    /// A file refused by its own checks (parse, name, keys, users).
    pub fn of_file(error: ConfigError) -> Self {
        let file = match &error {
            ConfigError::Read { file, .. }
            | ConfigError::NotAFile { file }
            | ConfigError::Parse { file, .. }
            | ConfigError::Invalid { file, .. }
            | ConfigError::Empty { file } => file.clone(),
        };
        Self::new(&file, error.line(), error)
    }
}

/// The reason names the file (and the line) already.
impl fmt::Display for RefusedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.why.fmt(f)
    }
}

impl std::error::Error for RefusedFile {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.why.source()
    }
}

/// What a load of accounts_dir found: the accounts that validate together, and every file
/// refused, in file order.
#[derive(Debug, Default)]
pub struct Loaded {
    pub registry: Registry,
    pub refused: Vec<RefusedFile>,
}

impl Loaded {
    /// Takes one file's account, in sorted file order: it joins unless one of its users belongs
    /// to an account of an earlier file, which keeps the user.
    pub fn take(&mut self, account: Result<Account, RefusedFile>) {
        let refused = account.and_then(|account| {
            let file = account.file.clone();
            self.registry
                .insert(account)
                .map_err(|err| RefusedFile::new(&file, None, err))
        });
        if let Err(refusal) = refused {
            self.refused.push(refusal);
        }
    }
}

impl Registry {
    /// Reads every account file in `dir`, checked against `rules`: the accounts that validate
    /// and the files refused. Fails only when `dir` cannot be listed.
    pub fn load(dir: &Path, rules: &AccountRules) -> Result<Loaded, ConfigError> {
        let mut loaded = Loaded::default();
        for file in account_files(dir)? {
            let account = read_account_file(&file)
                .and_then(|text| Self::account(&file, &text, rules))
                .map_err(RefusedFile::of_file);
            loaded.take(account);
        }
        Ok(loaded)
    }

    /// One account from its file's text, checked against `rules`.
    pub fn account(file: &Path, text: &str, rules: &AccountRules) -> Result<Account, ConfigError> {
        Self::account_from(file, AccountFile::parse(text, file)?, rules)
    }

    /// One account from its file's parsed keys, checked against `rules` (which a new config
    /// may have changed).
    pub fn account_from(
        file: &Path,
        parsed: AccountFile,
        rules: &AccountRules,
    ) -> Result<Account, ConfigError> {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = AccountName::new(&stem)
            .map_err(|err| ConfigError::invalid(file, format!("the file name is {err}")))?;
        let backend = match &parsed.socket {
            Some(address) => {
                if let Address::Unix(path) = address
                    && let Some(why) = rules.refuse_socket(path)
                {
                    return Err(ConfigError::invalid(file, why));
                }
                let keys = parsed.pool.over(&rules.template);
                Backend::External {
                    address: address.clone(),
                    max_connections: keys.max_children.unwrap_or(EXTERNAL_CONNECTIONS),
                }
            }
            None => Backend::Managed(Box::new(
                parsed
                    .pool
                    .plan(&rules.template, name.as_str())
                    .map_err(|err| ConfigError::invalid(file, err.to_string()))?,
            )),
        };
        for user in &parsed.users {
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    file,
                    format!("users: {user:?} is not a user name"),
                ));
            }
        }
        Ok(Account {
            name,
            users: parsed.users.clone(),
            backend,
            file: file.to_owned(),
            written: parsed,
        })
    }

    /// Adds an account; refused when a user already belongs to another account.
    pub fn insert(&mut self, account: Account) -> Result<(), ConfigError> {
        for user in &account.users {
            if let Some(owner) = self.users.get(user)
                && *owner != account.name
            {
                let other = &self.accounts[owner].file;
                return Err(ConfigError::invalid(
                    &account.file,
                    format!(
                        "user {user:?} already belongs to account {owner} ({}): a user maps to one \
                         account; take it out of one of the two files (then `plexer accounts \
                         reload {}`)",
                        other.display(),
                        account.name
                    ),
                ));
            }
        }
        self.remove(&account.name);
        for user in &account.users {
            self.users.insert(user.clone(), account.name.clone());
        }
        self.accounts
            .insert(account.name.clone(), Arc::new(account));
        Ok(())
    }

    /// Takes an account out, with its users; returns it when it was there.
    pub fn remove(&mut self, name: &AccountName) -> Option<Arc<Account>> {
        let old = self.accounts.remove(name)?;
        for user in &old.users {
            if self.users.get(user) == Some(name) {
                self.users.remove(user);
            }
        }
        Some(old)
    }

    pub fn get(&self, name: &AccountName) -> Option<&Account> {
        self.accounts.get(name).map(|a| &**a)
    }

    pub fn contains(&self, name: &AccountName) -> bool {
        self.accounts.contains_key(name)
    }

    /// The account a user (`REMOTE_USER`, or a login app's `X-Plexer-User`) belongs to.
    pub fn account_of_user(&self, user: &str) -> Option<&Account> {
        self.users
            .get(user)
            .and_then(|name| self.accounts.get(name))
            .map(|a| &**a)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values().map(|a| &**a)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PoolKeys {
        PoolKeys {
            command: Some(vec!["/bin/true".into()]),
            ..PoolKeys::default()
        }
    }

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir, rules: &AccountRules) -> Loaded {
        Registry::load(dir.path(), rules).unwrap()
    }

    /// Each refusal as `FILE NAME, ACCOUNT, LINE: REASON`, for assertions.
    fn refusals(loaded: &Loaded) -> Vec<String> {
        loaded
            .refused
            .iter()
            .map(|r| {
                let name = r.file.file_name().unwrap().to_string_lossy();
                let account = r.account.as_ref().map(AccountName::as_str);
                format!("{name}, {account:?}, {:?}: {r}", r.line)
            })
            .collect()
    }

    #[test]
    fn every_yaml_file_is_an_account_and_users_map_to_it() {
        let dir = dir(&[
            ("bob.yaml", "users: [bob, bob@example.com]\n"),
            ("sue.yaml", "socket: unix:/run/sue/app.sock\n"),
            ("login.yaml", "{}\n"),
            ("notes.txt", "not an account"),
            (".bob.yaml.tmp", "users: [x]"),
        ]);
        let loaded = load(&dir, &AccountRules::with_template(template()));
        assert!(loaded.refused.is_empty(), "{:?}", refusals(&loaded));
        let registry = loaded.registry;
        assert_eq!(registry.len(), 3);
        let bob = registry.account_of_user("bob@example.com").unwrap();
        assert_eq!(bob.name.as_str(), "bob");
        assert!(matches!(bob.backend, Backend::Managed(_)));
        let sue = registry.get(&AccountName::new("sue").unwrap()).unwrap();
        assert!(matches!(sue.backend, Backend::External { .. }));
    }

    #[test]
    fn a_bad_file_is_refused_alone_naming_it_and_the_others_load() {
        let dir = dir(&[
            ("Bob.yaml", "{}\n"),
            ("ann.yaml", "users: [ann]\n"),
            ("bob.yaml", "users: [bob]\nmax_childs: 2\n"),
            ("eve.yaml", ""),
            ("sue.yaml", "users: [sue\n"),
            ("zed.yaml", "users: [zed]\n"),
        ]);
        let loaded = load(&dir, &AccountRules::with_template(template()));
        let names: Vec<&str> = loaded
            .registry
            .accounts()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["ann", "zed"]);
        let refused = refusals(&loaded);
        let expected = [
            "Bob.yaml, None, None: ",
            "bob.yaml, Some(\"bob\"), Some(2): ",
            "eve.yaml, Some(\"eve\"), None: ",
            "sue.yaml, Some(\"sue\"), Some(2): ",
        ];
        assert_eq!(refused.len(), expected.len(), "{refused:?}");
        for (said, expected) in refused.iter().zip(expected) {
            assert!(said.starts_with(expected), "{said} !~ {expected}");
        }
        assert!(refused[0].contains("Bob.yaml: the file name is bad account name"));
        assert!(refused[1].contains("bob.yaml:2:1: unknown field `max_childs`"));
        assert!(refused[2].contains("eve.yaml is empty"));
        assert!(refused[3].contains("sue.yaml:2:1:"));
    }

    #[test]
    fn a_user_claimed_twice_refuses_the_later_file_naming_the_earlier() {
        let dir = dir(&[
            ("bob.yaml", "users: [x]\n"),
            ("amy.yaml", "users: [y]\n"),
            ("sue.yaml", "users: [y, x]\n"),
        ]);
        let loaded = load(&dir, &AccountRules::with_template(template()));
        let refused = refusals(&loaded);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("sue.yaml: user \"y\" already belongs to account amy")
                && refused[0].contains("amy.yaml"),
            "{refused:?}"
        );
        assert_eq!(
            loaded.registry.account_of_user("x").unwrap().name.as_str(),
            "bob"
        );
        assert_eq!(
            loaded.registry.account_of_user("y").unwrap().name.as_str(),
            "amy"
        );
    }

    #[test]
    fn an_account_needs_a_command_from_somewhere() {
        let dir = dir(&[("bob.yaml", "users: [bob]\n")]);
        let loaded = load(&dir, &AccountRules::default());
        assert!(loaded.registry.is_empty());
        let refused = refusals(&loaded);
        assert!(
            refused[0].contains("bob.yaml: command: is missing"),
            "{refused:?}"
        );
    }
}
