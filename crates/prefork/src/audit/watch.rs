//! A pool watched round after round: what to do about what its processes share.
//!
//! A process that forks to run a program holds every descriptor of its parent for a moment,
//! until `exec` closes those marked close-on-exec: a worker running `subprocess.run` shares
//! its database connection for that moment, harmlessly. So nothing is acted on the first time
//! it is seen; the watcher looks again shortly ([`PoolAuditor::awaits_confirmation`]) and acts
//! on what is still shared.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::unistd::Pid;

use super::descriptor::Identity;
use super::note::AuditNote;
use super::policy::AuditPolicy;
use super::shared::{AuditRound, Shared};

/// How often a pool is looked at when nothing is pending: a few `/proc` reads per process.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How soon something seen once is looked at again: longer than a fork-and-exec takes.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(300);

/// What the pool audit does with what it finds (`audit:` in plexer's config, `--audit` of
/// `plexer spawn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum AuditMode {
    /// Stop the pool, saying why, when a database handle is shared; warn about the rest.
    #[default]
    Strict,
    /// Log each finding once and go on.
    Warn,
    /// Do not look.
    Off,
}

impl AuditMode {
    pub const NAMES: [&'static str; 3] = ["strict", "warn", "off"];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Strict => "strict",
            AuditMode::Warn => "warn",
            AuditMode::Off => "off",
        }
    }
}

impl fmt::Display for AuditMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An audit mode that is none of `strict`, `warn` and `off`.
#[derive(Debug, thiserror::Error)]
#[error("unknown audit mode {0:?}: use strict, warn or off")]
pub struct AuditModeParseError(String);

impl FromStr for AuditMode {
    type Err = AuditModeParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "strict" => Ok(AuditMode::Strict),
            "warn" => Ok(AuditMode::Warn),
            "off" => Ok(AuditMode::Off),
            other => Err(AuditModeParseError(other.to_owned())),
        }
    }
}

/// What the watcher of a pool must do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stop the pool: its processes share a database handle (`strict`).
    Stop(String),
    /// Log this once.
    Warn(String),
}

/// The audit's memory for one pool: what was seen last round, and what was said already.
#[derive(Debug)]
pub struct PoolAuditor {
    mode: AuditMode,
    /// Seen in the last round, not yet acted on.
    sighted: HashSet<Identity>,
    /// Warnings already given, word for word.
    warned: HashSet<String>,
}

impl PoolAuditor {
    pub fn new(mode: AuditMode) -> Self {
        PoolAuditor {
            mode,
            sighted: HashSet::new(),
            warned: HashSet::new(),
        }
    }

    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Something was seen once and wants a second look before it is acted on.
    pub fn awaits_confirmation(&self) -> bool {
        !self.sighted.is_empty()
    }

    /// When to look next: soon when something awaits confirmation.
    pub fn next_look(&self) -> Duration {
        if self.awaits_confirmation() {
            CONFIRM_AFTER
        } else {
            LOOK_EVERY
        }
    }

    /// Looks at the pool whose workers are `workers` in `round`, and judges what it holds.
    /// A look that fails (a table not understood) leaves a note in the round, and no verdict.
    pub fn look(
        &mut self,
        round: &mut AuditRound,
        workers: &[Pid],
        policy: &AuditPolicy,
    ) -> Vec<Verdict> {
        if self.mode == AuditMode::Off || workers.is_empty() {
            return Vec::new();
        }
        match round.audit_pool(workers, policy) {
            Ok(shared) => self.judge(shared),
            Err(error) => {
                round.note(AuditNote::RoundFailed {
                    error: error.to_string(),
                });
                Vec::new()
            }
        }
    }

    /// Judges one round: what was also shared in the round before is acted on, a stop before
    /// any warning; what is new waits for the next round.
    pub fn judge(&mut self, round: Vec<Shared>) -> Vec<Verdict> {
        if self.mode == AuditMode::Off {
            return Vec::new();
        }
        let previous = std::mem::take(&mut self.sighted);
        let mut verdicts = Vec::new();
        for shared in round {
            if !previous.contains(&shared.identity()) {
                self.sighted.insert(shared.identity());
                continue;
            }
            let stops = self.mode == AuditMode::Strict
                && matches!(&shared, Shared::Database(handle) if handle.is_certainly_shared());
            let message = shared.to_string();
            if stops {
                verdicts.push(Verdict::Stop(message));
            } else if self.warned.insert(message.clone()) {
                verdicts.push(Verdict::Warn(message));
            }
        }
        verdicts.sort_by_key(|verdict| !matches!(verdict, Verdict::Stop(_)));
        verdicts
    }
}

/// The notes already given: a repeated audit gives each kind once.
#[derive(Debug, Default)]
pub struct NoteLog {
    given: HashSet<std::mem::Discriminant<AuditNote>>,
}

impl NoteLog {
    /// The notes of a kind not given before.
    pub fn first_time(&mut self, notes: Vec<AuditNote>) -> Vec<AuditNote> {
        notes
            .into_iter()
            .filter(|note| self.given.insert(note.kind()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
