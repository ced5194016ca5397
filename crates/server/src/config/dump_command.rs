//! `slowlog_dump:` (a pool key): the command run when a request passes
//! `request_slowlog_timeout`, whose output is the stuck worker's app-level stack, e.g.
//! `[py-spy, dump, --pid, "{pid}"]` or `[gdb, -p, "{pid}", -batch, -ex, "thread apply all bt"]`.
//!
//! A list, never a shell line: each item is one argument as written, and `{pid}` in any item
//! becomes the worker's pid. The slowlog runs it (`crate::slowlog`).

use std::ffi::OsString;
use std::sync::Arc;

/// What a `slowlog_dump` list may not be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DumpCommandError {
    #[error(
        "slowlog_dump: is an empty list: give the program and its arguments, e.g. \
         [py-spy, dump, --pid, \"{{pid}}\"], or leave the key out"
    )]
    Empty,
    #[error(
        "slowlog_dump: item {index} is an empty string: every item is a program or an argument"
    )]
    EmptyItem { index: usize },
}

/// A checked `slowlog_dump` list: a program, then its arguments; none is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpCommand(Arc<[String]>);

/// The placeholder for the worker's pid.
const PID: &str = "{pid}";

impl DumpCommand {
    pub fn new(items: &[String]) -> Result<Self, DumpCommandError> {
        if items.is_empty() {
            return Err(DumpCommandError::Empty);
        }
        if let Some(index) = items.iter().position(String::is_empty) {
            return Err(DumpCommandError::EmptyItem { index });
        }
        Ok(Self(items.into()))
    }

    /// The program and its arguments for the worker `pid`, `{pid}` replaced in each.
    pub fn for_pid(&self, pid: i32) -> (OsString, Vec<OsString>) {
        let pid = pid.to_string();
        let mut items = self.0.iter().map(|item| item.replace(PID, &pid).into());
        let program = items.next().expect("checked non-empty");
        (program, items.collect())
    }

    /// The command for `pid` as a person reads it: items joined by spaces, one that holds a
    /// space or nothing quoted.
    pub fn shown(&self, pid: i32) -> String {
        let pid = pid.to_string();
        let shown: Vec<String> = self
            .0
            .iter()
            .map(|item| item.replace(PID, &pid))
            .map(|item| {
                if item.contains(char::is_whitespace) {
                    format!("{item:?}")
                } else {
                    item
                }
            })
            .collect();
        shown.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(items: &[&str]) -> Result<DumpCommand, DumpCommandError> {
        DumpCommand::new(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn pid_is_expanded_in_every_item_and_nothing_else_changes() {
        let gdb = command(&["gdb", "-p", "{pid}", "-batch", "-ex", "thread apply all bt"]).unwrap();
        let (program, args) = gdb.for_pid(4321);
        assert_eq!(program, "gdb");
        assert_eq!(args, ["-p", "4321", "-batch", "-ex", "thread apply all bt"]);
        let spy = command(&["/opt/py-spy", "dump", "--pid={pid}", "{account}", "$HOME"]).unwrap();
        let (program, args) = spy.for_pid(7);
        assert_eq!(program, "/opt/py-spy");
        // No shell: `$HOME` stays as written, and only {pid} is a placeholder.
        assert_eq!(args, ["dump", "--pid=7", "{account}", "$HOME"]);
        assert_eq!(
            gdb.shown(4321),
            "gdb -p 4321 -batch -ex \"thread apply all bt\""
        );
    }

    #[test]
    fn an_empty_list_or_an_empty_item_is_refused() {
        assert_eq!(command(&[]), Err(DumpCommandError::Empty));
        assert_eq!(
            command(&["py-spy", "", "{pid}"]),
            Err(DumpCommandError::EmptyItem { index: 1 })
        );
    }
}
