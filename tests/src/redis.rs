//! A real Redis server (Debian's `redis-server`), private to one test: on 127.0.0.1 at a free
//! port, and on a unix socket named `cache.sock` in the scratch directory, which says nothing
//! of Redis (the fork-safety audit must know it by the process that answers). Nothing is saved
//! to disk. It is killed with the guard.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Running, Scratch, addr, tools, wait};

/// A running Redis server.
pub struct Redis {
    port: u16,
    socket: PathBuf,
    _server: Running,
}

impl Redis {
    pub fn start(scratch: &Scratch) -> Self {
        let port = addr::free_port();
        let socket = scratch.join("cache.sock");
        let mut command = Command::new(tools::require("redis-server", "redis-server"));
        command
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--unixsocket")
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "777",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(scratch.path());
        let mut server = Running::spawn(
            "redis-server",
            &mut command,
            &scratch.unique("redis", "log"),
        );
        wait::wait_until(
            "Redis answers PING",
            || {
                server.assert_running();
                ping(&socket)
            },
            Duration::from_secs(30),
        );
        Redis {
            port,
            socket,
            _server: server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Whether Redis answers `PING` with `+PONG` on `socket`.
fn ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
