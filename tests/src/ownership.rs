//! The owner, group and mode of a file, as `plexer serve` and `plexer spawn` give their
//! sockets (`listen_owner`/`-U`, `listen_group`/`-G`, `listen_mode`/`-M`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Group, User};

/// Panics unless `path` belongs to the user `owner` and the group `group`, with permission
/// bits `mode`.
pub fn assert_owner_group_mode(path: &Path, owner: &str, group: &str, mode: u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|err| panic!("stat {path:?}: {err}"));
    assert_eq!(meta.mode() & 0o7777, mode, "the mode of {path:?}");
    let uid = User::from_name(owner)
        .expect("read the user database")
        .unwrap_or_else(|| panic!("no user {owner}"))
        .uid;
    assert_eq!(meta.uid(), uid.as_raw(), "the owner of {path:?}");
    let gid = Group::from_name(group)
        .expect("read the group database")
        .unwrap_or_else(|| panic!("no group {group}"))
        .gid;
    assert_eq!(meta.gid(), gid.as_raw(), "the group of {path:?}");
}
