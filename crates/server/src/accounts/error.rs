//! What the accounts manager answers: typed refusals and changes, each rendered to text only
//! where a person reads it (the control protocol, the log).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use plexer_prefork::pool::Refusal;
use plexer_prefork::supervisor::SupervisorError;

use super::files::WriteError;
use crate::account::{AccountName, BadAccountName};
use crate::config::{ConfigError, Span};
use crate::cookie::KeyError;
use crate::registry::RefusedFile;

/// Why an account change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountsError {
    #[error(transparent)]
    Name(#[from] BadAccountName),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "account {name} exists ({}): edit that file and `plexer accounts reload {name}`, or \
         remove the account first",
        file.display()
    )]
    Exists { name: AccountName, file: PathBuf },
    #[error(
        "account {name} exists in table {table}: change its spec there (`UPDATE {table} SET \
         spec = ... WHERE name = '{name}'`), or remove the account first"
    )]
    RowExists { name: AccountName, table: String },
    #[error("there is no account {name}")]
    Missing { name: AccountName },
    #[error("there is no account {name} (no row of that name in table {table})")]
    NoRow { name: AccountName, table: String },
    /// The shared table could not be read or written; nothing was changed.
    #[error(transparent)]
    Table(#[from] crate::cluster::TableError),
    #[error("there is no account {name} (no {})", file.display())]
    NoFile { name: AccountName, file: PathBuf },
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: io::Error },
    /// An account file, or the config, that does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0} (with the new config; nothing was changed)")]
    WithNewConfig(ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{}: cannot start account {name}: {why}", file.display())]
    Start {
        file: PathBuf,
        name: AccountName,
        why: LaunchError,
    },
    /// An account file refused in a change (the account, if it runs, keeps its old version).
    #[error(transparent)]
    Refused(#[from] RefusedFile),
    #[error("{file}: the new workers of {name} did not start ({why}); the old ones go on serving")]
    NotReady {
        /// The file, or the name when the account had none.
        file: String,
        name: AccountName,
        why: NotReady,
    },
}

/// Why a generation of an account could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error(
        "its worker sockets would be {length} bytes long, over the {limit} a unix socket path \
         may have: use a shorter runtime_dir (or name)"
    )]
    SocketPathTooLong { length: usize, limit: usize },
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(
        "its workers would run as root, plexer's own user: give the pool a `user:` (\"{{account}}\" \
         gives each account its own), or write `user: root`, or start plexer with --allow-root"
    )]
    AsRoot,
    /// Its workers could connect to `listen:` and the route trusts a param they could send.
    #[error("{0}")]
    SharedUser(String),
}

/// Why a new generation was not ready to take requests.
#[derive(Debug)]
pub struct NotReady {
    pub why: NotReadyWhy,
    /// The pool's last worker failure, which usually says more.
    pub last_failure: Option<String>,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum NotReadyWhy {
    Refused(Refusal),
    FailedEarly,
    NoneWithin(Duration),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.why {
            NotReadyWhy::Refused(refusal) => write!(f, "{refusal}"),
            NotReadyWhy::FailedEarly => f.write_str("a worker failed before one was ready"),
            NotReadyWhy::NoneWithin(timeout) => write!(f, "no worker was ready within {timeout:?}"),
        }?;
        match &self.last_failure {
            Some(failure) => write!(f, "; last failure: {failure}"),
            None => Ok(()),
        }
    }
}

/// A `plexer accounts add` whose options cannot make an account file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("--set {key}=…: give {key} with {flag}")]
    OwnFlag { key: String, flag: &'static str },
    #[error("--set {key:?}: a key is a pool key like max_children")]
    NotAKey { key: String },
    #[error("--set {key}: the value must be one line")]
    NotOneLine { key: String },
    #[error("--set {key} is given twice")]
    Twice { key: String },
}

/// A change the manager made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Changed {
    /// `starts`: how its workers start (the pool's `pm`, or the app's socket).
    Added {
        name: AccountName,
        starts: &'static str,
    },
    Removed {
        name: AccountName,
        drain: Span,
    },
    /// `new`: the file was there, but not the account.
    Reloaded {
        name: AccountName,
        new: bool,
    },
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Changed::Added { name, starts } => write!(f, "added {name}: {starts}"),
            Changed::Removed { name, drain } => write!(
                f,
                "removed {name}: its requests in flight finish within {drain}, then its workers stop"
            ),
            Changed::Reloaded { name, new } => {
                let verb = if *new { "added" } else { "reloaded" };
                write!(f, "{verb} {name}: new requests go to its new workers")
            }
        }
    }
}
