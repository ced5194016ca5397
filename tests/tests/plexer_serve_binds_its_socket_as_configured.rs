//! `plexer serve` binds its socket as the config says (listen_owner, listen_group,
//! listen_mode), and refuses to take over a socket another running plexer serves.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use nix::unistd::{Group, User};
use plexer_tests::{PlexerServe, Scratch, ServeSetup, build, run};

#[test]
fn owner_group_and_mode_apply_and_a_live_socket_is_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // chown needs root; CI runs as root
    }
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            config_extra: "listen_owner: nobody\nlisten_group: nogroup\n",
            ..ServeSetup::default()
        },
    );
    let meta = std::fs::metadata(&plexer.socket).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o666, "listen_mode from the config");
    assert_eq!(
        meta.uid(),
        User::from_name("nobody").unwrap().unwrap().uid.as_raw()
    );
    assert_eq!(
        meta.gid(),
        Group::from_name("nogroup").unwrap().unwrap().gid.as_raw()
    );

    let mut second = Command::new(build::plexer());
    second.arg("serve").arg("-c").arg(plexer.config_path());
    let finished = run(&mut second, b"", Duration::from_secs(10));
    assert!(!finished.status.success());
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(stderr.contains("is in use by a running server"), "{stderr}");
    assert!(
        plexer.socket.exists(),
        "the running plexer keeps its socket"
    );
}
