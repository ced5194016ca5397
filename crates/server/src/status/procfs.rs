//! What the page reads of a worker from /proc: resident memory (`statm`) and CPU time
//! (`stat`'s utime and stime). Read only when a page asks, on a blocking thread; a worker that
//! exited meanwhile is left out, never an error.

use nix::unistd::{Pid, SysconfVar, sysconf};
use plexer_prefork::pool::Worker;
use serde_json::{Value, json};

/// The sum over an account's workers now: `rss_bytes` and `cpu_seconds`. CPU is that of the
/// workers running now, so it falls when one is replaced; memory counts pages shared between
/// workers once per worker, as `ps` does.
pub(super) fn account_usage(workers: &[Worker]) -> Value {
    let pids: Vec<Pid> = workers.iter().filter_map(|w| w.pid).collect();
    let rss: u64 = pids.iter().filter_map(|&pid| rss_bytes(pid)).sum();
    let cpu: f64 = pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum();
    json!({ "rss_bytes": rss, "cpu_seconds": cpu })
}

/// A process's resident memory, from /proc/PID/statm (in pages).
pub(super) fn rss_bytes(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * system_value(SysconfVar::PAGE_SIZE, 4096))
}

/// A process's user and system CPU time, from /proc/PID/stat.
pub(super) fn cpu_seconds(pid: Pid) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    Some(ticks as f64 / system_value(SysconfVar::CLK_TCK, 100) as f64)
}

/// utime + stime of a `/proc/PID/stat` line: fields 14 and 15, counted after the `)` that
/// ends the command name, which may itself hold spaces and parentheses (proc(5)).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn system_value(var: SysconfVar, otherwise: u64) -> u64 {
    sysconf(var)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(otherwise)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 120 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("4242 (cut"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = Pid::this();
        assert!(rss_bytes(me).is_some_and(|b| b > 0));
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
    }
}
