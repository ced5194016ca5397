//! What the supervisor benchmark reads from `/proc` (proc(5)): whether a process is alive, the
//! children of a process (php-fpm's workers, counted without asking a worker), and how many
//! descriptors this process holds.

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
    fn this_process_is_alive() {
        assert!(alive(std::process::id() as i32));
    }
}
