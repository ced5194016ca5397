//! What the benchmarks read from `/proc` (proc(5)): whether a process is alive, the children of
//! a process (php-fpm's workers, counted without asking a worker), how many descriptors this
//! process holds, and the CPU time a process and its descendants used.

use std::fs;
use std::path::Path;

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => state_of(&stat).is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The live children of `parent`, found by their parent pid in `/proc/PID/stat`.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited meanwhile
        };
        let live = state_of(&stat).is_some_and(|state| state != 'Z' && state != 'X');
        if live && ppid_of(&stat) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// The descriptors this process holds (the directory handle used to count them excluded).
pub fn own_fd_count() -> usize {
    fs::read_dir(Path::new("/proc/self/fd")).map_or(0, |dir| dir.count().saturating_sub(1))
}

/// The kernel's unit for the CPU times in `/proc/PID/stat`: `USER_HZ`, 100 on Linux.
const TICKS_PER_SECOND: u64 = 100;

/// The CPU time (user and system, all threads) that `pid` and its live descendants have used
/// so far, in ticks of 10 ms; 0 for a process that is gone. Descendants that exited are not
/// counted, so measure over a span in which none exit.
pub fn tree_cpu_ticks(pid: i32) -> u64 {
    let mut total = 0;
    let mut queue = vec![pid];
    // Bounded: a process appears once, and the depth of a server's tree is small.
    while let Some(next) = queue.pop() {
        total += cpu_ticks(next).unwrap_or(0);
        queue.extend(children_of(next));
    }
    total
}

/// Ticks as a duration.
pub fn ticks_to_duration(ticks: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// `utime + stime` of `pid` alone, all its threads (fields 14 and 15 of `/proc/PID/stat`).
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = fields_after_comm(&stat)?;
    // After comm, field 3 (state) is the first: utime is the 12th from here, stime the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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

fn ppid_of(stat: &str) -> Option<i32> {
    fields_after_comm(stat)?.nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_and_ppid_past_a_comm_with_spaces() {
        let stat = "4242 (php-fpm: pool (x)) S 4200 4200 4200 0 -1";
        assert_eq!(state_of(stat), Some('S'));
        assert_eq!(ppid_of(stat), Some(4200));
    }

    #[test]
    fn this_process_used_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_ticks(std::process::id() as i32).is_some_and(|t| t > 0));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(alive(std::process::id() as i32));
    }
}
