//! `/proc/PID/stat` (proc(5)): `pid (comm) state ppid pgrp …`.
//!
//! `comm` is the process's name as it set it, cut at 15 bytes: it may hold spaces and `)`,
//! and a cut through a multi-byte character leaves bytes that are not UTF-8. So the file is
//! read as bytes, and only what follows the last `)` is read as text.

use nix::unistd::Pid;

/// The process group of `pid`; `None` when it is gone or its stat cannot be read.
pub(crate) fn process_group(pid: Pid) -> Option<Pid> {
    parse_process_group(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_process_group(stat: &[u8]) -> Option<Pid> {
    let comm_end = stat.iter().rposition(|&byte| byte == b')')?;
    let fields = std::str::from_utf8(&stat[comm_end + 1..]).ok()?;
    let pgrp = fields.split_ascii_whitespace().nth(2)?.parse().ok()?;
    Some(Pid::from_raw(pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_follows_the_last_parenthesis_whatever_the_name_holds() {
        let plain = b"4242 (php-cgi) S 1 4240 4240 0 -1 4194560 120 0 0 0";
        assert_eq!(parse_process_group(plain), Some(Pid::from_raw(4240)));
        // "worker ) café…" cut at 15 bytes, through the 'é'.
        let cut = b"4243 (worker ) caf\xc3) S 1 4241 4241 0 -1 4194560 120 0 0 0";
        assert_eq!(parse_process_group(cut), Some(Pid::from_raw(4241)));
        assert_eq!(parse_process_group(b"4244 (no end"), None);
    }

    #[test]
    fn this_process_reads_its_own_group() {
        let me = nix::unistd::getpid();
        assert_eq!(process_group(me), Some(nix::unistd::getpgrp()));
    }
}
