//! The account registry: `accounts_dir`, one `NAME.yaml` per account (CONTRACT.md).
//!
//! Loading is all or nothing: every file is read and checked, and the first problem refuses
//! the whole set, naming the file, so a bad edit never leaves half the accounts applied. The
//! name comes from the file name and is checked like any account name; files that are not
//! `*.yaml`, or start with a dot (editors' and our own temporary files), are not accounts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use plexer_fcgi::Address;

use crate::account::AccountName;
use crate::config::{AccountFile, ConfigError, PoolKeys, PoolPlan};

/// Where an account's requests go.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Workers plexer runs and supervises.
    Managed(Box<PoolPlan>),
    /// An app someone else runs (`socket:`): plexer only routes to it.
    External(Address),
}

/// One account, ready to serve.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: AccountName,
    pub users: Vec<String>,
    pub backend: Backend,
    /// The file it came from, for messages.
    pub file: PathBuf,
}

/// Every account, by name and by user.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    accounts: BTreeMap<AccountName, Account>,
    users: HashMap<String, AccountName>,
}

impl Registry {
    /// Reads every account file in `dir`, with `template` the config's `pool:`.
    pub fn load(dir: &Path, template: &PoolKeys) -> Result<Self, ConfigError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
            file: dir.to_owned(),
            source,
        })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Read {
                file: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || path.extension().is_none_or(|ext| ext != "yaml") {
                continue;
            }
            files.push(path);
        }
        files.sort();
        let mut registry = Self::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                file: file.clone(),
                source,
            })?;
            registry.insert(Self::account(&file, &text, template)?)?;
        }
        Ok(registry)
    }

    /// One account from its file's text, checked against the template.
    pub fn account(file: &Path, text: &str, template: &PoolKeys) -> Result<Account, ConfigError> {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = AccountName::new(&stem)
            .map_err(|err| ConfigError::invalid(file, format!("the file name is {err}")))?;
        let parsed = AccountFile::parse(text, file)?;
        let backend = match parsed.socket {
            Some(address) => Backend::External(address),
            None => Backend::Managed(Box::new(
                parsed
                    .pool
                    .plan(template, name.as_str())
                    .map_err(|message| ConfigError::invalid(file, message))?,
            )),
        };
        Ok(Account {
            name,
            users: parsed.users,
            backend,
            file: file.to_owned(),
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
                         account",
                        other.display()
                    ),
                ));
            }
        }
        if let Some(old) = self.accounts.remove(&account.name) {
            for user in &old.users {
                self.users.remove(user);
            }
        }
        for user in &account.users {
            self.users.insert(user.clone(), account.name.clone());
        }
        self.accounts.insert(account.name.clone(), account);
        Ok(())
    }

    pub fn get(&self, name: &AccountName) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// The account a user (`REMOTE_USER`, or a login app's `X-Plexer-User`) belongs to.
    pub fn account_of_user(&self, user: &str) -> Option<&Account> {
        self.users
            .get(user)
            .and_then(|name| self.accounts.get(name))
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
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

    #[test]
    fn every_yaml_file_is_an_account_and_users_map_to_it() {
        let dir = dir(&[
            ("bob.yaml", "users: [bob, bob@example.com]\n"),
            ("sue.yaml", "socket: unix:/run/sue/app.sock\n"),
            ("login.yaml", ""),
            ("notes.txt", "not an account"),
            (".bob.yaml.tmp", "users: [x]"),
        ]);
        let registry = Registry::load(dir.path(), &template()).unwrap();
        assert_eq!(registry.len(), 3);
        let bob = registry.account_of_user("bob@example.com").unwrap();
        assert_eq!(bob.name.as_str(), "bob");
        assert!(matches!(bob.backend, Backend::Managed(_)));
        let sue = registry.get(&AccountName::new("sue").unwrap()).unwrap();
        assert!(matches!(sue.backend, Backend::External(_)));
    }

    #[test]
    fn a_bad_file_refuses_the_whole_set_and_names_it() {
        let cases = [
            (
                vec![("Bob.yaml", "")],
                "Bob.yaml: the file name is bad account name",
            ),
            (
                vec![
                    ("bob.yaml", "users: [x]\n"),
                    ("sue.yaml", "users: [y, x]\n"),
                ],
                "sue.yaml: user \"x\" already belongs to account bob",
            ),
            (
                vec![("bob.yaml", "max_childs: 2\n")],
                "bob.yaml:1:1: unknown field `max_childs`",
            ),
        ];
        for (files, expected) in cases {
            let dir = dir(&files);
            let err = Registry::load(dir.path(), &template())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err} !~ {expected}");
        }
    }

    #[test]
    fn an_account_needs_a_command_from_somewhere() {
        let dir = dir(&[("bob.yaml", "users: [bob]\n")]);
        let err = Registry::load(dir.path(), &PoolKeys::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bob.yaml: command: is missing"), "{err}");
    }
}
