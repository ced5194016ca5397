//! HAProxy (Debian's package) as a test's front: a config text whose `bind :80` line is
//! replaced by a free port on 127.0.0.1, run in the foreground, killed with the guard.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Addr, Running, Scratch, run, wait};

/// What the shipped configs bind, replaced by the test's own address.
const SHIPPED_BIND: &str = "bind :80";

/// A running HAProxy.
pub struct HaProxy {
    pub port: u16,
    _server: Running,
}

fn program() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("haproxy is installed (make test installs Debian's haproxy)")
}

impl HaProxy {
    /// Checks `config` (`haproxy -c`), then starts HAProxy on it; returns once it listens.
    pub fn start(scratch: &Scratch, config: &str) -> Self {
        let Addr::Tcp(addr) = Addr::free_tcp_port() else {
            unreachable!()
        };
        assert!(
            config.contains(SHIPPED_BIND),
            "the config has no {SHIPPED_BIND:?}"
        );
        let config = config.replace(SHIPPED_BIND, &format!("bind 127.0.0.1:{}", addr.port()));
        let file = scratch.join("haproxy.cfg");
        std::fs::write(&file, config).expect("write haproxy.cfg");
        let mut check = std::process::Command::new(program());
        check.arg("-c").arg("-f").arg(&file);
        run(&mut check, b"", Duration::from_secs(20)).assert_success();
        let mut command = std::process::Command::new(program());
        command.arg("-db").arg("-f").arg(&file);
        let mut server = Running::spawn("haproxy", &mut command, &scratch.unique("haproxy", "log"));
        wait::wait_until(
            "HAProxy listens",
            || {
                server.assert_running();
                std::net::TcpStream::connect(addr).is_ok()
            },
            Duration::from_secs(10),
        );
        Self {
            port: addr.port(),
            _server: server,
        }
    }
}
