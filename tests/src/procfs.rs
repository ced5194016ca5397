//! What the tests and the benchmarks read from `/proc` (proc(5)): whether a process exists or
//! runs, its children (workers, counted without asking them), its descriptors, its memory, and
//! the CPU time it and its descendants used.
//!
//! A zombie (exited, not yet reaped) still has its `/proc/PID` and still names its parent:
//! [`exists`] and [`children_of`] count it, [`running`] and [`running_children_of`] do not.

use std::fs;
use std::time::Duration;

/// `/proc/PID` is there: the process runs, or is a zombie no one has reaped yet.
pub fn exists(pid: u32) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// The process exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| is_running(&stat))
}

/// Every process whose parent is `parent`, zombies included.
pub fn children_of(parent: u32) -> Vec<u32> {
    children_where(parent, |_| true)
}

/// The children of `parent` that are not zombies.
pub fn running_children_of(parent: u32) -> Vec<u32> {
    children_where(parent, is_running)
}

fn children_where(parent: u32, keep: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A process that exited meanwhile has no stat: not a child any more.
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| ppid_of(&stat) == Some(parent) && keep(&stat))
        })
        .collect()
}

/// The descriptors `pid` holds; 0 for a process that is gone.
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The descriptors this process holds, the one used to count them excluded.
pub fn own_fd_count() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count().saturating_sub(1))
}

/// The resident memory of `pid` (`VmRSS`), in KiB; `None` for a process that is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// The kernel's unit for the CPU times in `/proc/PID/stat`: `USER_HZ`, 100 on Linux.
const TICKS_PER_SECOND: u64 = 100;

/// `utime + stime` of `pid` alone, all its threads (fields 14 and 15 of `/proc/PID/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = fields_after_comm(&stat)?;
    // After comm, field 3 (state) is the first: utime is the 12th from here, stime the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU time (user and system, all threads) that `pid` and its running descendants have
/// used so far, in ticks of 10 ms; 0 for a process that is gone. Descendants that exited are
/// not counted, so measure over a span in which none exit.
pub fn tree_cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    let mut queue = vec![pid];
    // Bounded: a process appears once, and the depth of a server's tree is small.
    while let Some(next) = queue.pop() {
        total += cpu_ticks(next).unwrap_or(0);
        queue.extend(running_children_of(next));
    }
    total
}

/// Ticks as a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// `pid (comm) S ppid …`: comm may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn fields_after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    let end = stat.rfind(')')?;
    Some(stat[end + 1..].split_whitespace())
}

fn state_of(stat: &str) -> Option<char> {
    fields_after_comm(stat)?.next()?.chars().next()
}

/// Not a zombie ('Z') nor dead ('X').
fn is_running(stat: &str) -> bool {
    state_of(stat).is_some_and(|state| state != 'Z' && state != 'X')
}

fn ppid_of(stat: &str) -> Option<u32> {
    fields_after_comm(stat)?.nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn parses_state_and_ppid_past_a_comm_with_spaces() {
        let stat = "4242 (php-fpm: pool (x)) S 4200 4200 4200 0 -1";
        assert_eq!(state_of(stat), Some('S'));
        assert_eq!(ppid_of(stat), Some(4200));
        assert!(is_running(stat));
        assert!(!is_running("4242 (x) Z 4200 4200"));
    }

    #[test]
    fn this_process_used_some_cpu() {
        // Spins until the kernel has counted a tick of it: on a loaded machine 30 ms of wall
        // time can be less than one tick of CPU.
        let spin = std::time::Instant::now();
        let used = || cpu_ticks(std::process::id()).is_some_and(|t| t > 0);
        while !used() && spin.elapsed() < Duration::from_secs(5) {}
        assert!(used());
    }

    #[test]
    fn this_process_is_alive() {
        let me = std::process::id();
        assert!(exists(me) && running(me));
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(open_fds(me) > 0 && own_fd_count() > 0);
    }

    #[test]
    fn an_unreaped_child_exists_and_is_a_child_but_does_not_run() {
        let mut child = Command::new("/bin/true")
            .stdout(Stdio::null())
            .spawn()
            .expect("run /bin/true");
        let pid = child.id();
        let me = std::process::id();
        // Not reaped until wait(): a zombie once it has exited.
        assert!(crate::wait_for(|| !running(pid), Duration::from_secs(10)));
        assert!(exists(pid));
        assert!(children_of(me).contains(&pid));
        assert!(!running_children_of(me).contains(&pid));
        child.wait().expect("reap /bin/true");
        assert!(!exists(pid));
    }
}
