//! One slowlog entry: what the status page (`?json` key `slow`), `plexer status --slow` and the
//! slowlog file show of a request found past `request_slowlog_timeout`, and its text form.
//!
//! The text is written for a person reading the file and for no one else to parse: the first
//! line of an entry starts at the margin with its time, and everything the app or a client
//! controls (the URI, the dump's output) is on indented lines with control characters escaped,
//! so no output can forge an entry or move a terminal's cursor.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A slow request, seen while it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was found past the threshold: UTC, RFC 3339, to the second.
    pub time: String,
    pub account: String,
    /// The account's generation that served it.
    pub generation: u64,
    /// The worker's pid.
    pub pid: i32,
    /// The request's path; never its query string, which may carry a tenant's data.
    pub uri: String,
    /// How long it had run when it was found.
    pub seconds: f64,
    /// `/proc/PID/wchan`: the kernel function the worker sleeps in (`0` when it runs).
    pub wchan: Option<String>,
    /// `/proc/PID/stack`, where plexer may read it (as root).
    pub kernel_stack: Option<String>,
    /// What `slowlog_dump` gave.
    pub dump: Dump,
}

/// How the pool's `slowlog_dump` went; `command` is the one run, `{pid}` expanded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Dump {
    /// The pool has no `slowlog_dump`.
    NotConfigured,
    /// The request ended before its dump started: nothing left to look at.
    RequestEnded { command: String },
    /// As many dumps as may run at once were running; this one was not started.
    Skipped { command: String, running: usize },
    /// The program could not be started (missing, not executable).
    CannotStart { command: String, error: String },
    /// It ran to its end: `status` says how, `output` is its stdout and stderr.
    Exited {
        command: String,
        status: String,
        output: String,
        bytes_left_out: u64,
    },
    /// It was still running when its time was up, and was killed with its process group.
    Killed {
        command: String,
        after_seconds: u64,
        output: String,
        bytes_left_out: u64,
    },
}

impl Entry {
    /// The entry as the slowlog file and `plexer status --slow` show it, ending in a blank
    /// line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "[{}] slow request: account {}, worker pid {}, uri {}, running for {:.1}s\n",
            self.time,
            escaped(&self.account),
            self.pid,
            escaped(&self.uri),
            self.seconds
        );
        let wchan = self.wchan.as_deref().map_or("not readable".into(), escaped);
        let _ = writeln!(out, "  wchan: {wchan}");
        match &self.kernel_stack {
            Some(stack) => {
                out.push_str("  kernel stack:\n");
                indented(&mut out, stack);
            }
            None => out.push_str("  kernel stack: not readable (plexer reads it as root)\n"),
        }
        self.dump.describe(&mut out);
        out.push('\n');
        out
    }
}

impl Dump {
    fn describe(&self, out: &mut String) {
        let (command, outcome, output) = match self {
            Self::NotConfigured => {
                out.push_str("  dump: none (the pool has no slowlog_dump)\n");
                return;
            }
            Self::RequestEnded { command } => {
                (command, "not run: the request ended first".into(), None)
            }
            Self::Skipped { command, running } => (
                command,
                format!("not run: {running} dumps were running, the most at once"),
                None,
            ),
            Self::CannotStart { command, error } => {
                (command, format!("cannot be started: {error}"), None)
            }
            Self::Exited {
                command,
                status,
                output,
                bytes_left_out,
            } => (command, status.clone(), Some((output, *bytes_left_out))),
            Self::Killed {
                command,
                after_seconds,
                output,
                bytes_left_out,
            } => (
                command,
                format!("killed after {after_seconds} s, still running; its output until then"),
                Some((output, *bytes_left_out)),
            ),
        };
        let _ = writeln!(out, "  dump: {}: {outcome}", escaped(command));
        if let Some((output, left_out)) = output {
            indented(out, output);
            if left_out > 0 {
                let _ = writeln!(out, "    [{left_out} more bytes left out]");
            }
        }
    }
}

/// Each line of `text` on a line of its own, indented, escaped. An empty line keeps its
/// indent: a line with nothing on it ends an entry.
fn indented(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "    {}", escaped(line));
    }
}

/// `text` with control characters (a newline, an escape sequence) written as escapes, as a
/// worker's output is in plexer's log; tabs stay, as stacks indent with them.
fn escaped(text: &str) -> String {
    plexer_prefork::supervisor::printable_line(text.as_bytes())
}

/// `at` as UTC in RFC 3339 to the second (`2026-01-31T23:59:59Z`).
pub(crate) fn utc(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
