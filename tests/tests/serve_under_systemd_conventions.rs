//! `plexer serve` started the way systemd starts a `Type=notify` service with a .socket unit
//! (examples/systemd/): the test plays systemd. It binds the listening socket, hands it over as
//! descriptor 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to plexer's own pid, and reads the
//! `NOTIFY_SOCKET` datagrams. plexer must say READY=1, serve on the socket it was given (and
//! bind nothing itself), keep systemd's variables from its workers, say STOPPING=1 on SIGTERM,
//! and leave the socket file to its owner. `LISTEN_*` meant for another process are ignored.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use plexer_tests::{
    CgiResponse, HelloAnswer, PlexerRequest, Running, Scratch, ServeFiles, ServeSetup, build, wait,
};

/// `sh` puts the socket from its stdin on descriptor 3 and sets `LISTEN_PID` to its own pid,
/// which `exec` hands on to plexer: what systemd does between its fork and exec.
/// `$0` is plexer, `$1` the config, `$2` more arguments (`--allow-root` as root).
const AS_SYSTEMD: &str =
    r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" serve -c "$1" $2 3<&0 </dev/null"#;

/// The next datagram that contains `wanted`, within `timeout`; panics with what came instead.
fn await_notification(notify: &UnixDatagram, wanted: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        notify
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .expect("set a read timeout");
        let Ok(n) = notify.recv(&mut buf) else {
            break;
        };
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.lines().any(|line| line == wanted) {
            return message;
        }
        seen.push(message);
    }
    panic!("no {wanted} within {timeout:?}; got {seen:?}");
}

fn environment_of(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read a worker's environ");
    raw.split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn serves_the_socket_systemd_passes_and_notifies_readiness_and_stop() {
    let scratch = Scratch::new();
    // Workers keep plexer's environment, so that one leaking systemd's variables would show.
    let files = ServeFiles::write(
        &scratch,
        &ServeSetup {
            pool_extra: "  clear_env: false\n",
            ..ServeSetup::default()
        },
    );
    let activated = scratch.socket_path("activated");
    let listener = UnixListener::bind(&activated).expect("bind the socket systemd would");
    let notify_path = scratch.socket_path("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");

    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", AS_SYSTEMD])
        .arg(build::plexer())
        .arg(&files.config)
        .arg(if nix::unistd::geteuid().is_root() {
            "--allow-root"
        } else {
            ""
        })
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::from(OwnedFd::from(listener)));
    let mut plexer = Running::spawn(
        "plexer serve (socket-activated)",
        &mut command,
        &scratch.unique("plexer", "log"),
    );
    drop(command); // the test's copy of the socket: plexer holds the only one now

    let ready = await_notification(&notify, "READY=1", Duration::from_secs(10));
    assert!(ready.contains("STATUS=serving 3 accounts"), "{ready:?}");

    let out = PlexerRequest::new(format!("unix:{}", activated.display()), "/hello").run();
    out.assert_success();
    let answer = HelloAnswer::parse(&CgiResponse::parse(&out.stdout).body);
    assert_eq!(answer.get("account"), "login", "{}", plexer.log());
    assert!(
        !files.socket.exists(),
        "plexer bound its config's listen socket too: {}",
        files.socket.display()
    );
    let leaked: Vec<String> = environment_of(answer.pid())
        .into_iter()
        .filter(|var| {
            ["LISTEN_", "NOTIFY_SOCKET=", "WATCHDOG_"]
                .iter()
                .any(|p| var.starts_with(p))
        })
        .collect();
    assert!(leaked.is_empty(), "a worker inherited {leaked:?}");

    plexer.signal(Signal::SIGTERM);
    await_notification(&notify, "STOPPING=1", Duration::from_secs(10));
    let status = plexer.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "plexer stops cleanly on SIGTERM: {status:?}\n{}",
        plexer.log()
    );
    assert!(
        activated.exists(),
        "the socket file belongs to the .socket unit and stays"
    );
}

#[test]
fn listen_variables_meant_for_another_process_are_ignored() {
    let scratch = Scratch::new();
    let files = ServeFiles::write(&scratch, &ServeSetup::default());
    let mut command = build::serve_command(build::plexer());
    command
        .arg("-c")
        .arg(&files.config)
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .stdin(Stdio::null());
    let _plexer = Running::spawn(
        "plexer serve (inherited LISTEN_*)",
        &mut command,
        &scratch.unique("plexer", "log"),
    );
    wait::wait_until_listening(
        "plexer binds its config's socket",
        Path::new(&files.socket),
        Duration::from_secs(10),
    );
    let out = PlexerRequest::new(format!("unix:{}", files.socket.display()), "/").run();
    out.assert_success();
}
