//! Debian's `php-cgi` as a FastCGI server: `php-cgi -b PATH` binds the socket and serves it
//! itself.
//!
//! What php-cgi needs from the web server, found by trying: `SCRIPT_FILENAME` (without it the
//! answer is `Status: 404 Not Found` and "No input file specified."). `REDIRECT_STATUS` is
//! not needed: `cgi.force_redirect` is only enforced when php-cgi runs as plain CGI, not under
//! FastCGI.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::addr::Addr;
use crate::process::Running;
use crate::scratch::Scratch;
use crate::wire::{self, Probe};

/// A running `php-cgi -b`, one process (`PHP_FCGI_CHILDREN=0`), killed on drop.
#[derive(Debug)]
pub struct PhpCgi {
    process: Running,
    addr: Addr,
}

impl PhpCgi {
    /// Starts php-cgi on a unix socket in `scratch` and waits until it answers.
    pub fn start(scratch: &Scratch) -> Self {
        let addr = Addr::Unix(scratch.socket_path("php"));
        let mut command = Command::new(crate::tools::php_cgi());
        command
            .arg("-b")
            .arg(addr.bare())
            .env("PHP_FCGI_CHILDREN", "0")
            .env("PHP_FCGI_MAX_REQUESTS", "1000000")
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .current_dir(scratch.path())
            .stdin(Stdio::null());
        let log = scratch.unique("php-cgi", "log");
        let mut process = Running::spawn("php-cgi", &mut command, &log);
        let ready = crate::wait::wait_for_value(
            || {
                process.assert_running();
                let mut conn = addr.connect(Duration::from_secs(2)).ok()?;
                match wire::probe(&mut conn) {
                    Ok(Probe::Answered(_)) => Some(()),
                    _ => None,
                }
            },
            crate::START_TIMEOUT,
        );
        if ready.is_none() {
            panic!(
                "php-cgi did not answer on {addr} within {:?}; its output:\n{}",
                crate::START_TIMEOUT,
                process.log()
            );
        }
        Self { process, addr }
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    pub fn process(&mut self) -> &mut Running {
        &mut self.process
    }
}
