//! Which files this process holds POSIX record locks on, from `/proc/locks` (proc(5)).
//!
//! The audit reads the first 16 bytes of open files to recognise SQLite databases, and that
//! means opening and closing a second descriptor. POSIX locks belong to the process, not the
//! descriptor, so that close drops every lock the process holds on the file: exactly how
//! SQLite databases get corrupted (<https://www.sqlite.org/howtocorrupt.html> §2.2.1). So the
//! audit of its own process leaves files it holds POSIX locks on unopened.

use std::collections::HashSet;

/// A file as `/proc/locks` names it: major and minor device number, inode.
pub(crate) type LockedFile = (u64, u64, u64);

/// The files `pid` holds POSIX locks on, or `None` when the text is not understood, in which
/// case the caller must assume every file may be locked.
pub(crate) fn posix_locks_held_by(text: &str, pid: i32) -> Option<HashSet<LockedFile>> {
    let mut held = HashSet::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let _id = fields.next()?;
        let kind = fields.next()?;
        // "->" marks a waiter blocked on someone else's lock: it holds nothing yet.
        if kind == "->" {
            continue;
        }
        if kind != "POSIX" {
            continue;
        }
        let _mode = fields.next()?;
        let _access = fields.next()?;
        let owner: i32 = fields.next()?.parse().ok()?;
        let file = fields.next()?;
        if owner != pid {
            continue;
        }
        let mut parts = file.split(':');
        let major = u64::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
        let inode = parts.next()?.parse().ok()?;
        held.insert((major, minor, inode));
    }
    Some(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 4242 fd:01:1311765 1073741826 1073742335
1: -> POSIX  ADVISORY  WRITE 4243 fd:01:1311765 1073741826 1073742335
2: FLOCK  ADVISORY  WRITE 4242 00:1a:77 0 EOF
3: OFDLCK ADVISORY  READ  -1 08:02:99 0 EOF
4: POSIX  ADVISORY  READ  4242 08:02:4711 128 128
5: POSIX  ADVISORY  READ  999 08:02:5 0 EOF
";

    #[test]
    fn only_posix_locks_the_pid_holds_count() {
        let held = posix_locks_held_by(LOCKS, 4242).unwrap();
        assert_eq!(held, HashSet::from([(0xfd, 1, 1311765), (8, 2, 4711)]));
        assert!(posix_locks_held_by(LOCKS, 4243).unwrap().is_empty());
    }

    #[test]
    fn unreadable_text_means_unknown() {
        assert_eq!(posix_locks_held_by("1: POSIX ADVISORY WRITE x", 1), None);
        assert_eq!(posix_locks_held_by("", 1), Some(HashSet::new()));
    }
}
