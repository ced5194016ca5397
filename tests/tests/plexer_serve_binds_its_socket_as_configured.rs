//! `plexer serve` binds its socket as the config says (listen_owner, listen_group,
//! listen_mode), and refuses to take over a socket another running plexer serves.

use std::time::Duration;

use plexer_tests::ownership::assert_owner_group_mode;
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
    // listen_mode "0666" comes from the config ServeSetup writes.
    assert_owner_group_mode(&plexer.socket, "nobody", "nogroup", 0o666);

    let mut second = build::serve_command(build::plexer());
    second.arg("-c").arg(plexer.config_path());
    let finished = run(&mut second, b"", Duration::from_secs(10));
    assert!(!finished.status.success());
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(stderr.contains("is in use by a running server"), "{stderr}");
    assert!(
        plexer.socket.exists(),
        "the running plexer keeps its socket"
    );
}
