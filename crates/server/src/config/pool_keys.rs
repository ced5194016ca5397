//! The pool keys: the config's `pool:` template, which an account file may override key by key.
//!
//! The keys are declared once, in `pool_keys!`, for both places: serde cannot combine
//! `flatten` with `deny_unknown_fields`, and hand-kept copies would drift.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use plexer_prefork::pool::{Pm, PoolSettings, SettingsError};
use plexer_prefork::spawn::{Identity, SpawnError, WorkerCommand};
use serde::Deserialize;

use super::Span;
use super::dump_command::{DumpCommand, DumpCommandError};

/// `audit:` (the fork-safety audit of the workers): `strict`, `warn` or `off`.
pub use plexer_prefork::audit::AuditMode;

/// `pm:` (php-fpm's meaning, research/php-fpm.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PmKind {
    Static,
    Dynamic,
    Ondemand,
}

/// Declares the pool keys once and makes from them: [`PoolKeys`] (the `pool:` template, and the
/// pool part of an account file), `AccountKeys` (an account file as written: the pool keys plus
/// the account's own), the split of the one into the other, and the key-by-key fallback.
macro_rules! pool_keys {
    ($($(#[$doc:meta])* $key:ident: $ty:ty,)*) => {
        /// The `pool:` template; also the pool part of an account file.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct PoolKeys {
            $($(#[$doc])* pub $key: Option<$ty>,)*
            /// `{account}` in a value becomes the account's name; merged, not replaced.
            pub env: Option<BTreeMap<String, String>>,
        }

        /// An account file as written: the pool keys plus the account's own.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct AccountKeys {
            users: Option<Vec<String>>,
            socket: Option<String>,
            $($key: Option<$ty>,)*
            env: Option<BTreeMap<String, String>>,
        }

        impl AccountKeys {
            /// The account's own keys, and its pool keys.
            pub(crate) fn into_parts(self) -> (Option<Vec<String>>, Option<String>, PoolKeys) {
                let pool = PoolKeys { $($key: self.$key,)* env: self.env };
                (self.users, self.socket, pool)
            }
        }

        impl PoolKeys {
            /// The keys of `self` (an account file), falling back to `template` key by key;
            /// `env` is merged, the account's values winning.
            pub fn over(&self, template: &PoolKeys) -> PoolKeys {
                let mut env = template.env.clone().unwrap_or_default();
                env.extend(self.env.clone().unwrap_or_default());
                PoolKeys {
                    $($key: self.$key.clone().or_else(|| template.$key.clone()),)*
                    env: Some(env),
                }
            }
        }
    };
}

pool_keys! {
    /// The worker's program and arguments.
    command: Vec<String>,
    pm: PmKind,
    max_children: usize,
    /// pm dynamic: idle workers kept at least and at most, and started at first.
    min_spare: usize,
    max_spare: usize,
    start: usize,
    /// pm ondemand: a worker idle this long stops.
    idle_timeout: Span,
    max_requests: u64,
    max_requests_jitter: u64,
    request_timeout: Span,
    /// A request that takes longer is logged and counted as slow (php-fpm's
    /// request_slowlog_timeout); `0s` turns that off.
    request_slowlog_timeout: Span,
    /// Run when a request passes request_slowlog_timeout: `[py-spy, dump, --pid, "{pid}"]`.
    slowlog_dump: Vec<String>,
    queue_timeout: Span,
    max_queue: usize,
    user: String,
    group: String,
    clear_env: bool,
    chroot: PathBuf,
    chdir: PathBuf,
    rlimit_files: u64,
    rlimit_core: u64,
    audit: AuditMode,
}

/// Everything needed to run one account's pool, with defaults and overrides applied.
#[derive(Clone, Debug)]
pub struct PoolPlan {
    pub settings: PoolSettings,
    pub command: WorkerCommand,
    /// The plexer's own timer for one request; 504 when it passes.
    pub request_timeout: Duration,
    /// Longer requests are slow; `None`: not counted.
    pub slow_request: Option<Duration>,
    /// What the slowlog runs for a slow request's worker; `None`: no dump.
    pub slowlog_dump: Option<DumpCommand>,
    pub audit: AuditMode,
}

/// `request_slowlog_timeout` when not given.
pub const DEFAULT_SLOW_REQUEST: Duration = Duration::from_secs(5);

/// Why a pool's keys make no pool; each names the key to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("command: is missing: give the worker's program, e.g. [/usr/bin/php-cgi]")]
    NoCommand,
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Identity(#[from] SpawnError),
    #[error("group: needs user: too (the user the workers run as)")]
    GroupWithoutUser,
    #[error(transparent)]
    SlowlogDump(#[from] DumpCommandError),
}

impl PoolKeys {
    /// The pool of `account` from these keys over `template`, checked.
    pub fn plan(&self, template: &PoolKeys, account: &str) -> Result<PoolPlan, PlanError> {
        let keys = self.over(template);
        let command = keys
            .command
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or(PlanError::NoCommand)?;
        let settings = keys.settings();
        settings.validate()?;
        // `{account}` in user: and group: is the account's name, as in env: one user per tenant.
        let expand = |text: &str| text.replace("{account}", account);
        let identity = match &keys.user {
            Some(user) => {
                let group = keys.group.as_deref().map(expand);
                Some(Identity::resolve(&expand(user), group.as_deref())?)
            }
            None if keys.group.is_some() => return Err(PlanError::GroupWithoutUser),
            None => None,
        };
        let (program, args) = command.split_first().expect("checked non-empty");
        let slowlog_dump = keys.slowlog_dump.as_deref().map(DumpCommand::new);
        Ok(PoolPlan {
            settings,
            command: WorkerCommand {
                program: program.into(),
                args: args.iter().map(Into::into).collect(),
                clear_env: keys.clear_env.unwrap_or(true),
                env: keys.env_of(account),
                identity,
                chroot: keys.chroot.clone(),
                chdir: keys.chdir.clone(),
                rlimits: keys.rlimits(),
            },
            request_timeout: keys
                .request_timeout
                .map_or(Duration::from_secs(60), |s| s.0),
            slow_request: Some(
                keys.request_slowlog_timeout
                    .map_or(DEFAULT_SLOW_REQUEST, |s| s.0),
            )
            .filter(|after| !after.is_zero()),
            slowlog_dump: slowlog_dump.transpose()?,
            audit: keys.audit.unwrap_or_default(),
        })
    }

    /// The pool's settings, php-fpm's defaults where a key is not given (not yet validated).
    fn settings(&self) -> PoolSettings {
        let defaults = PoolSettings::default();
        let max_children = self.max_children.unwrap_or(defaults.max_children);
        let pm = match self.pm.unwrap_or(PmKind::Ondemand) {
            PmKind::Static => Pm::Static,
            PmKind::Ondemand => Pm::Ondemand {
                idle_timeout: self.idle_timeout.map_or(Duration::from_secs(10), |s| s.0),
            },
            PmKind::Dynamic => {
                let min_spare = self.min_spare.unwrap_or(1);
                let max_spare = self.max_spare.unwrap_or(max_children.min(3)).max(min_spare);
                Pm::Dynamic {
                    start: self.start.unwrap_or((min_spare + max_spare) / 2),
                    min_spare,
                    max_spare,
                }
            }
        };
        PoolSettings {
            pm,
            max_children,
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            max_requests_jitter: self
                .max_requests_jitter
                .unwrap_or(defaults.max_requests_jitter),
            queue_timeout: self.queue_timeout.map_or(defaults.queue_timeout, |s| s.0),
            max_queue: self.max_queue.unwrap_or(defaults.max_queue),
            ..defaults
        }
    }

    /// `env`, with `{account}` in a value made the account's name.
    fn env_of(&self, account: &str) -> Vec<(OsString, OsString)> {
        self.env
            .iter()
            .flatten()
            .map(|(k, v)| {
                (
                    OsString::from(k),
                    OsString::from(v.replace("{account}", account)),
                )
            })
            .collect()
    }

    fn rlimits(&self) -> Vec<(nix::sys::resource::Resource, u64)> {
        let mut rlimits = Vec::new();
        if let Some(files) = self.rlimit_files {
            rlimits.push((nix::sys::resource::Resource::RLIMIT_NOFILE, files));
        }
        if let Some(core) = self.rlimit_core {
            rlimits.push((nix::sys::resource::Resource::RLIMIT_CORE, core));
        }
        rlimits
    }
}
