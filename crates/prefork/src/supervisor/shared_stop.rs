//! Stopping a worker of a shared socket without cutting a request short.
//!
//! Workers that share one listening socket accept in turn, so the supervisor cannot know which
//! one is serving. It finds out without a race: it stops the worker's process group with
//! SIGSTOP (a stopped process cannot accept), looks in /proc for a connection accepted on the
//! worker's listening socket, and then either sends SIGTERM (no connection: the worker is idle
//! and stays so until it dies) or lets it go on (SIGCONT) and looks again shortly. A worker that
//! never gets idle is killed by the pool's `stop_timeout` like any other.
//!
//! php-fpm instead sends SIGQUIT and, with its default `process_control_timeout = 0`, SIGTERM in
//! the same millisecond, which resets requests in flight (research/php-fpm.md §1.3).

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::audit::{DescriptorKind, ProcessTable, TableCache, UnixName, sockets_of};

/// How often a busy worker is looked at again.
const RECHECK: Duration = Duration::from_millis(20);

pub(super) fn terminate_when_idle(pool: String, pid: Pid) {
    tokio::spawn(async move {
        loop {
            match killpg(pid, Signal::SIGSTOP) {
                Ok(()) => {}
                Err(Errno::ESRCH) => return, // already gone
                Err(err) => {
                    tracing::warn!(pool, %pid, error = %err, "cannot pause the worker; stopping it now");
                    let _ = killpg(pid, Signal::SIGTERM);
                    return;
                }
            }
            let serving = group_serving(pid);
            if !serving {
                // Delivered on SIGCONT, before the worker can run anything else.
                let _ = killpg(pid, Signal::SIGTERM);
            }
            let _ = killpg(pid, Signal::SIGCONT);
            if !serving {
                return;
            }
            tracing::debug!(pool, %pid, "worker still serving a request; stopping it later");
            tokio::time::sleep(RECHECK).await;
        }
    });
}

/// Whether any process of the worker's group holds a connection accepted on the listening
/// socket it serves. The group's processes share their socket tables, read once per check.
fn group_serving(group: Pid) -> bool {
    let mut tables = TableCache::default();
    ProcessTable::read()
        .members(&[group])
        .into_iter()
        .any(|pid| match sockets_of(pid, &mut tables) {
            Ok(sockets) => serves_its_listener(sockets.iter().map(|d| d.kind())),
            // A process that vanished serves nothing; one we cannot read is assumed busy.
            Err(e) => !e.is_gone_process(),
        })
}

/// A process serves a request when it holds a connection whose own address is that of one
/// of its listening sockets: an accepted connection (a unix one carries the listener's path),
/// or a unix socket the audit could not classify.
pub(crate) fn serves_its_listener<'a>(
    kinds: impl Iterator<Item = &'a DescriptorKind> + Clone,
) -> bool {
    let listening = kinds.clone().filter_map(|kind| match kind {
        DescriptorKind::TcpListener { local } => Some(Listening::Tcp(*local)),
        DescriptorKind::UnixListener { name } if *name != UnixName::Unnamed => {
            Some(Listening::Unix(name.clone()))
        }
        _ => None,
    });
    let listening: Vec<Listening> = listening.collect();
    kinds.into_iter().any(|kind| match kind {
        // A listener on 0.0.0.0 or [::] accepts connections whose own address is a real one.
        DescriptorKind::TcpConnection { local, .. } => listening.iter().any(|l| {
            matches!(l, Listening::Tcp(at)
                if at.port() == local.port() && (at.ip().is_unspecified() || at.ip() == local.ip()))
        }),
        DescriptorKind::UnixConnection { local, .. } => {
            listening.contains(&Listening::Unix(local.clone()))
        }
        // It may be a connection on the listener: waiting is safe, and stop_timeout bounds it.
        DescriptorKind::UnixAmbiguous { .. } => true,
        _ => false,
    })
}

#[derive(PartialEq)]
enum Listening {
    Tcp(std::net::SocketAddr),
    Unix(UnixName),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    fn unix(path: &str) -> UnixName {
        UnixName::Path(PathBuf::from(path))
    }

    #[test]
    fn only_a_connection_on_the_listeners_own_address_counts_as_serving() {
        let listener = DescriptorKind::UnixListener {
            name: unix("/run/app.sock"),
        };
        let accepted = DescriptorKind::UnixConnection {
            local: unix("/run/app.sock"),
            peer: None,
        };
        let database = DescriptorKind::UnixConnection {
            local: UnixName::Unnamed,
            peer: Some(unix("/run/postgresql/.s.PGSQL.5432")),
        };
        let idle = [listener.clone(), database.clone()];
        assert!(
            !serves_its_listener(idle.iter()),
            "a database connection is not a request"
        );
        let busy = [listener, database, accepted];
        assert!(serves_its_listener(busy.iter()));

        let tcp_listener = DescriptorKind::TcpListener {
            local: "127.0.0.1:9000".parse().unwrap(),
        };
        let tcp_accepted = DescriptorKind::TcpConnection {
            local: "127.0.0.1:9000".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
        };
        let tcp_outgoing = DescriptorKind::TcpConnection {
            local: "127.0.0.1:50001".parse().unwrap(),
            peer: "127.0.0.1:5432".parse().unwrap(),
        };
        assert!(!serves_its_listener(
            [tcp_listener.clone(), tcp_outgoing.clone()].iter()
        ));
        assert!(serves_its_listener(
            [tcp_listener, tcp_outgoing, tcp_accepted].iter()
        ));

        // spawn-fcgi's `-a 0.0.0.0`: the accepted connection has a real address.
        let wildcard = DescriptorKind::TcpListener {
            local: "0.0.0.0:9000".parse().unwrap(),
        };
        let via_loopback = DescriptorKind::TcpConnection {
            local: "127.0.0.1:9000".parse().unwrap(),
            peer: "127.0.0.1:50002".parse().unwrap(),
        };
        let other_port = DescriptorKind::TcpConnection {
            local: "127.0.0.1:9001".parse().unwrap(),
            peer: "127.0.0.1:50003".parse().unwrap(),
        };
        assert!(serves_its_listener([wildcard.clone(), via_loopback].iter()));
        assert!(!serves_its_listener([wildcard, other_port].iter()));
    }

    /// A python process in its own group, listening on `path`; with `busy`, it also holds a
    /// connection it accepted there.
    fn group_holding_listener(path: &std::path::Path, busy: bool) -> Killed {
        let script = "import socket, sys, time\n\
            l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1]); l.listen()\n\
            if sys.argv[2] == 'busy':\n\
            \x20   c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); a, _ = l.accept()\n\
            print('ready', flush=True); time.sleep(60)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .arg(if busy { "busy" } else { "idle" })
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready, "ready\n");
        Killed(child)
    }

    struct Killed(std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_group_is_serving_while_it_holds_a_connection_on_its_listener() {
        let dir = tempfile::tempdir().unwrap();
        let idle = group_holding_listener(&dir.path().join("idle.sock"), false);
        let busy = group_holding_listener(&dir.path().join("busy.sock"), true);
        let group = |child: &Killed| Pid::from_raw(child.0.id() as i32);
        assert!(!group_serving(group(&idle)));
        assert!(group_serving(group(&busy)));
        let gone = group(&idle);
        drop(idle);
        assert!(!group_serving(gone), "a group that is gone serves nothing");
    }

    #[test]
    fn a_unix_socket_the_audit_cannot_classify_may_be_serving() {
        let listener = DescriptorKind::UnixListener {
            name: unix("/run/app.sock"),
        };
        let ambiguous = DescriptorKind::UnixAmbiguous { inode: 12345 };
        assert!(serves_its_listener([listener, ambiguous].iter()));
    }
}
